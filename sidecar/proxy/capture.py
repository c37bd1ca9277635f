"""What the log learns of one exchange: a pure accumulator (:class:`Capture`), the bounded copy
of the response (:class:`ResponseCapture`), request ids, the metrics of a finished exchange
(:func:`observe`) and the sink protocol. No sockets and no clocks: every time is passed in."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from sidecar.records import ErrorKind, Exchange

if TYPE_CHECKING:
    from sidecar.metrics import SidecarMetrics


class ExchangeSink(Protocol):
    """Where the proxy hands each finished exchange (the durable log queue)."""

    def submit(self, exchange: Exchange) -> None: ...


CLIENT_CLOSED_REQUEST = 499  # nginx's status for "the client went away first"
REFUSED_REQUEST_STATUSES = frozenset({400, 413, 422})  # the upstream found the request malformed
TAIL_BYTES = 64 * 1024  # the end of a long response: usage, finish reason, the last events
SUMMARY_HEAD_BYTES = 64 * 1024  # the start of a response too long to store: id, model, 1st token
MAX_CHUNK_MARKS = 4096  # chunk times kept per stream (the time to first token needs the first)


class ResponseCapture:
    """What the log keeps of one response, bounded whatever the response's size.

    The first ``keep_bytes`` (``request_log.max_body_bytes``: as much as a row can store) and
    then only the last ``TAIL_BYTES``, where streams put their usage and finish events and a
    JSON body its ``usage``. Once a response is known to be longer than ``keep_bytes`` (its
    Content-Length, or the bytes so far) it will not be stored, so only its first
    ``SUMMARY_HEAD_BYTES`` are kept. Memory and the spool record per request are bounded by
    ``keep_bytes + TAIL_BYTES``; :attr:`total_bytes` is the real size.
    """

    __slots__ = ("_head", "_head_bytes", "_tail", "_tail_bytes", "keep_bytes", "marks",
                 "total_bytes")  # fmt: skip

    def __init__(self, keep_bytes: int) -> None:
        self.keep_bytes = keep_bytes
        self._head: list[bytes] = []
        self._head_bytes = 0
        self._tail: deque[bytes] = deque()
        self._tail_bytes = 0
        self.total_bytes = 0
        self.marks: list[tuple[int, float]] = []  # (offset past the chunk, ms), head chunks only

    def expect(self, content_length: int | None) -> None:
        """The response announced its length: keep only a summary of one too long to store."""
        if content_length is not None and content_length > self.keep_bytes:
            self.keep_bytes = min(self.keep_bytes, SUMMARY_HEAD_BYTES)

    def add(self, chunk: bytes, elapsed_ms: float | None = None) -> None:
        """Keep what the log can use of ``chunk``; ``elapsed_ms`` marks stream chunk times."""
        self.total_bytes += len(chunk)
        room = self.keep_bytes - self._head_bytes
        if room > 0:
            head, chunk = chunk[:room], chunk[room:]
            self._head.append(head)
            self._head_bytes += len(head)
            if elapsed_ms is not None and len(self.marks) < MAX_CHUNK_MARKS:
                self.marks.append((self._head_bytes, elapsed_ms))
        if not chunk:
            return
        if self.keep_bytes > SUMMARY_HEAD_BYTES:  # longer than a row stores: keep a summary
            self._shrink_head()
        self._tail.append(chunk)
        self._tail_bytes += len(chunk)
        while self._tail_bytes > TAIL_BYTES:
            excess, first = self._tail_bytes - TAIL_BYTES, self._tail[0]
            if len(first) <= excess:
                self._tail.popleft()
                self._tail_bytes -= len(first)
            else:
                self._tail[0] = first[excess:]
                self._tail_bytes -= excess

    def _shrink_head(self) -> None:
        """The head beyond the summary is dropped, except its end: that starts the tail, so a
        response just over ``keep_bytes`` still has its whole last ``TAIL_BYTES`` (a ``usage``
        object never straddles the gap)."""
        whole = b"".join(self._head)
        head, rest = whole[:SUMMARY_HEAD_BYTES], whole[SUMMARY_HEAD_BYTES:][-TAIL_BYTES:]
        self._head, self._head_bytes, self.keep_bytes = [head], len(head), SUMMARY_HEAD_BYTES
        self.marks = [mark for mark in self.marks if mark[0] <= len(head)]
        if rest:
            self._tail.appendleft(rest)
            self._tail_bytes += len(rest)

    def replace(self, body: bytes) -> None:
        """Keep ``body`` (the sidecar's own answer) instead of anything captured so far."""
        self._head, self._head_bytes = [body], len(body)
        self._tail.clear()
        self._tail_bytes = 0
        self.total_bytes = len(body)
        self.marks.clear()

    @property
    def gap_at(self) -> int | None:
        """Offset in :meth:`body` where bytes were dropped; None when it is the whole response."""
        kept = self._head_bytes + self._tail_bytes
        return self._head_bytes if kept < self.total_bytes else None

    def body(self) -> bytes:
        return b"".join(self._head) + b"".join(self._tail)


def new_request_id(now_s: float | None = None) -> str:
    """A 32-hex id that sorts by creation time: 48 bits of Unix ms, 80 random bits."""
    millis = int((time.time() if now_s is None else now_s) * 1000)
    return f"{millis:012x}{os.urandom(10).hex()}"


class Capture:
    """Everything the :class:`~sidecar.records.Exchange` record needs, gathered as the relay runs.

    The relay fills in the request (:attr:`request_body`, :attr:`model`, :attr:`usage_injected`,
    :attr:`upstream_ms`) and reports what happens: :meth:`on_response` for the upstream's status
    and headers, :meth:`on_chunk` per body chunk, and how it ended (:meth:`on_error`,
    :meth:`on_sidecar_answer`, :meth:`on_client_gone`). Times are ``time.perf_counter()``
    seconds passed in; :meth:`to_exchange` builds the record at ``now``.
    """

    __slots__ = ("body", "cancelled", "client_key_hash", "error_kind", "error_message", "headers",
                 "id", "method", "model", "path", "query", "request_body",
                 "response_content_type", "started", "started_at", "status", "stream", "ttfb_ms",
                 "upstream_ms", "usage_injected")  # fmt: skip

    def __init__(
        self, request_id: str, started: float, started_at: float, method: str, path: str,
        query: bytes, headers: Mapping[bytes, bytes], *, keep_bytes: int,
        client_key_hash: str | None,
    ) -> None:  # fmt: skip
        self.id = request_id
        self.started = started  # perf_counter seconds: every duration is measured from here
        self.started_at = started_at  # Unix seconds, for the record
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers  # the request's, by lower-case name
        self.client_key_hash = client_key_hash
        self.request_body = b""
        self.model: str | None = None  # the request's "model", when it is JSON
        self.usage_injected = False
        self.upstream_ms: float | None = None
        self.status = 0
        self.response_content_type: str | None = None
        self.stream = False
        self.ttfb_ms: float | None = None
        self.body = ResponseCapture(keep_bytes)
        self.error_kind: str | None = None
        self.error_message: str | None = None
        self.cancelled = False

    def on_response(self, status: int, content_type: str | None, length: int | None) -> None:
        """The upstream's status line and headers arrived (a status a client can be sent)."""
        self.status = status
        if status >= 500:
            self.error_kind = ErrorKind.UPSTREAM_ERROR
        elif status in REFUSED_REQUEST_STATUSES:
            self.error_kind = ErrorKind.BAD_REQUEST
        self.response_content_type = content_type
        self.stream = content_type is not None and content_type.startswith("text/event-stream")
        self.body.expect(length)

    def on_chunk(self, chunk: bytes, now: float) -> None:
        """A piece of the upstream's response body arrived at ``now``."""
        elapsed_ms = (now - self.started) * 1000.0
        if self.ttfb_ms is None:
            self.ttfb_ms = elapsed_ms
        self.body.add(chunk, elapsed_ms if self.stream else None)

    def on_error(self, kind: str, message: str) -> None:
        """The exchange failed (an :class:`~sidecar.records.ErrorKind` value and why)."""
        self.error_kind = kind
        self.error_message = message

    def on_sidecar_answer(self, status: int, kind: str, message: str, body: bytes) -> None:
        """The sidecar answers with its own error (nothing was relayed): ``body`` is logged."""
        self.status = status
        self.on_error(kind, message)
        self.response_content_type = "application/json"
        self.body.replace(body)

    def on_client_gone(self) -> None:
        """The client disconnected before its response was complete."""
        self.cancelled = True
        self.on_error(
            ErrorKind.CLIENT_DISCONNECTED,
            "the client disconnected before the response was complete",
        )
        if not self.status:
            self.status = CLIENT_CLOSED_REQUEST

    def to_exchange(self, now: float) -> Exchange:
        """The record of the exchange as it stands at ``now`` (its end)."""
        headers = self.headers
        content_type = headers.get(b"content-type")
        client_request_id = headers.get(b"x-request-id")
        body = self.body
        return Exchange(
            id=self.id,
            client_request_id=client_request_id.decode("latin-1") if client_request_id else None,
            started_at=self.started_at,
            method=self.method,
            path=self.path,
            query=self.query.decode("latin-1"),
            status=self.status,
            latency_ms=(now - self.started) * 1000.0,
            ttfb_ms=self.ttfb_ms,
            upstream_ms=self.upstream_ms,
            request_content_type=content_type.decode("latin-1") if content_type else None,
            request_body=self.request_body,
            response_content_type=self.response_content_type,
            response_body=body.body(),
            stream=self.stream,
            usage_injected=self.usage_injected,
            error_kind=self.error_kind,
            error_message=self.error_message,
            cancelled=self.cancelled,
            client_key_hash=self.client_key_hash,
            capture_truncated=body.gap_at is not None,
            chunk_marks=tuple(body.marks),
            schema_header=_text(headers.get(b"x-sidecar-schema")),
            response_bytes=body.total_bytes,
            response_gap_at=body.gap_at,
        )


def observe(exchange: Exchange, model: str | None, metrics: SidecarMetrics) -> None:
    """Every metric one finished exchange moves, in one place (so each is counted once)."""
    label = metrics.model_label(model)
    metrics.requests.labels(label, str(exchange.status)).inc()
    metrics.request_duration.labels(label).observe(exchange.latency_ms / 1000.0)
    kind = exchange.error_kind
    if kind is not None and kind.startswith("upstream"):
        metrics.upstream_errors.labels(kind).inc()
    if exchange.cancelled:
        metrics.client_disconnects.inc()


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None
