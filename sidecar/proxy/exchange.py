"""One request through the proxy: read the body, forward, relay, capture, hand over the Exchange.

The hot path does, per request: read the body, parse it once when it is JSON (to learn the
model and whether to ask for stream usage), forward, relay the response as it arrives, then
hand one :class:`~sidecar.records.Exchange` to the sink (a single spool append) before the
client's response is complete. A client that stops reading is dropped after
``proxy.write_timeout_s``; the upstream connection slot is freed whatever ends the exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson

from sidecar.errors import UpstreamError
from sidecar.proxy.capture import ResponseCapture, new_request_id
from sidecar.proxy.headers import client_response_headers, upstream_request_headers
from sidecar.proxy.responses import error_body, send_json
from sidecar.proxy.sse import UsageChunkFilter, split_done
from sidecar.proxy.upstream import UpstreamResponse
from sidecar.records import ErrorKind, Exchange

if TYPE_CHECKING:
    from sidecar.proxy.app import ProxyApp

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("sidecar.proxy")

STREAM_USAGE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
BODY_READ_TIMEOUT_S = 60.0
WHOLE_BODY_LIMIT = 4 * 1024 * 1024  # larger non-stream responses are relayed chunk by chunk
CLIENT_CLOSED_REQUEST = 499  # nginx's status for "the client went away first"
REFUSED_REQUEST_STATUSES = frozenset({400, 413, 422})  # the upstream found the request malformed
DISCONNECT_WATCH_AFTER_S = 0.01
ADAPTER_CHANGE_PATHS = frozenset({"/v1/load_lora_adapter", "/v1/unload_lora_adapter"})


class StreamAborted(Exception):
    """Raised after headers were sent, so the ASGI server drops the client connection."""


class _RequestTooLarge(Exception):
    pass


class ProxiedRequest:
    """One request through the proxy; collects what the Exchange record needs."""

    def __init__(self, proxy: ProxyApp, scope: Scope, receive: Receive, send: Send) -> None:
        self.proxy = proxy
        self.scope = scope
        self.header_map: dict[bytes, bytes] = dict(scope["headers"])  # lower-case names
        self.receive = receive
        self.send = send
        self.started = time.perf_counter()
        self.started_at = time.time()
        self.id = new_request_id(self.started_at)
        self.request_body = b""
        self.model: str | None = None
        self.status = 0
        self.upstream_ms: float | None = None
        self.ttfb_ms: float | None = None
        self.response_content_type: str | None = None
        self.capture = ResponseCapture(proxy.keep_bytes)
        self.response: UpstreamResponse | None = None  # until released or aborted
        self.stream = False
        self.usage_injected = False
        self.error_kind: str | None = None
        self.error_message: str | None = None
        self.cancelled = False
        self.completed = False
        self.client_gone = False
        self.task: asyncio.Task[Any] | None = None
        self.send_deadline: float | None = None  # of the send to the client in progress
        self.write_watch: asyncio.TimerHandle | None = None
        self.too_slow = False

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    async def run(self) -> None:
        headers = self.scope["headers"]
        try:
            self.request_body = await self._read_body()
        except _RequestTooLarge:
            limit = self.proxy.max_body_bytes
            await self._fail(413, "BadRequestError", ErrorKind.REQUEST_TOO_LARGE,
                             f"request body exceeds the sidecar's limit of {limit} bytes "
                             "(raise proxy.max_body_bytes to allow it)")  # fmt: skip
            return
        except TimeoutError:
            await self._fail(408, "BadRequestError", ErrorKind.BAD_REQUEST,
                             "the request body did not arrive in time")  # fmt: skip
            return
        if self.client_gone:
            self._finish_cancelled()
            return
        upstream_body = self._inspect_request()
        task = asyncio.current_task()
        assert task is not None
        # Most exchanges end within a few ms; only longer ones pay for a disconnect watcher task.
        watcher: list[asyncio.Future[None]] = []
        start_watching = asyncio.get_running_loop().call_later(
            DISCONNECT_WATCH_AFTER_S,
            lambda: watcher.append(asyncio.ensure_future(self._watch_disconnect(task))),
        )
        self.task = task
        try:
            await self._forward(headers, upstream_body)
        except asyncio.CancelledError:
            if self.too_slow:
                task.uncancel()
                raise self._finish_too_slow() from None
            if not self.client_gone:
                raise
            task.uncancel()
            self._finish_cancelled()
        finally:
            if self.write_watch is not None:
                self.write_watch.cancel()
            start_watching.cancel()
            for future in watcher:
                future.cancel()
            if self.response is not None and not self.response.finished:
                self.response.abort()  # whatever ended the exchange, free the upstream slot

    async def _read_body(self) -> bytes:
        limit = self.proxy.max_body_bytes
        declared = self.header_map.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _RequestTooLarge
        async with asyncio.timeout(BODY_READ_TIMEOUT_S):  # a body that never comes: 408
            message = await self.receive()
        if message["type"] == "http.disconnect":
            self.client_gone = True
            return b""
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise _RequestTooLarge
            return body
        parts = [body]
        size = len(body)
        async with asyncio.timeout(BODY_READ_TIMEOUT_S):
            while message.get("more_body", False):
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    self.client_gone = True
                    return b"".join(parts)
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise _RequestTooLarge
                parts.append(chunk)
        return b"".join(parts)

    def _inspect_request(self) -> bytes:
        """Learn the model; ask for stream usage when the client did not. Returns the body to send."""
        body = self.request_body
        if self.scope["method"] != "POST" or not body:
            return body
        content_type = self.header_map.get(b"content-type")
        if content_type is None or not content_type.startswith(b"application/json"):
            return body
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body  # the upstream answers malformed JSON itself
        if not isinstance(payload, dict):
            return body
        model = payload.get("model")
        self.model = model if isinstance(model, str) else None
        if (
            self.proxy.inject_stream_usage
            and payload.get("stream") is True
            and self.scope["path"] in STREAM_USAGE_PATHS
        ):
            options = payload.get("stream_options")
            if options is None or (
                isinstance(options, dict)
                and not options.get("include_usage")
                and not options.get("continuous_usage_stats")
            ):
                payload["stream_options"] = {**(options or {}), "include_usage": True}
                self.usage_injected = True
                return orjson.dumps(payload)
        return body

    async def _watch_disconnect(self, task: asyncio.Task[Any]) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                if not self.completed:
                    self.client_gone = True
                    task.cancel()
                return

    async def _forward(self, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        proxy = self.proxy
        sent_at = time.perf_counter()
        try:
            response = await proxy.upstream.send(
                self.scope["method"],
                self.scope.get("raw_path") or self.scope["path"].encode(),
                self.scope["query_string"],
                upstream_request_headers(headers, api_key=proxy.upstream_api_key),
                body,
            )
        except UpstreamError as exc:
            await self._fail(exc.status, exc.error_type, exc.kind, str(exc))
            return
        self.response = response
        self.upstream_ms = (time.perf_counter() - sent_at) * 1000.0
        if not 100 <= response.status <= 599:  # no HTTP server can send that on to the client
            response.abort()
            message = f"the upstream answered with an invalid HTTP status {response.status}"
            await self._fail(502, "BadGateway", ErrorKind.UPSTREAM_ERROR, message)
            return
        self.status = response.status
        if response.status >= 500:
            self.error_kind = ErrorKind.UPSTREAM_ERROR
        elif response.status in REFUSED_REQUEST_STATUSES:
            self.error_kind = ErrorKind.BAD_REQUEST
        self.response_content_type = response.content_type
        self.stream = (self.response_content_type or "").startswith("text/event-stream")
        length = response.content_length
        self.capture.expect(length)
        if self.stream or length is None or length > WHOLE_BODY_LIMIT:
            await self._relay_stream(response)
        else:
            await self._relay_whole(response)

    async def _relay_whole(self, response: UpstreamResponse) -> None:
        try:
            body = await response.read()
        except UpstreamError as exc:
            response.abort()
            await self._fail(exc.status, exc.error_type, exc.kind, str(exc))
            return
        response.release()
        self.ttfb_ms = self.elapsed_ms()
        self._capture(body)
        headers = client_response_headers(
            response.raw_headers, request_id=self.id.encode(), keep_length=True
        )
        self._submit()
        self.completed = True
        hook = self.proxy.after_adapter_change
        changed = self.scope["path"] in ADAPTER_CHANGE_PATHS and 200 <= self.status < 300
        if hook is not None and changed:
            await hook()
        await self.send({"type": "http.response.start", "status": self.status, "headers": headers})
        await self._send_body(body, more=False)

    async def _relay_stream(self, response: UpstreamResponse) -> None:
        send = self.send
        hide_usage = UsageChunkFilter() if self.usage_injected and self.stream else None
        headers = client_response_headers(
            response.raw_headers, request_id=self.id.encode(), keep_length=hide_usage is None
        )
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        held_done = b""
        try:
            async for chunk in response.iter_chunks():
                if self.ttfb_ms is None:
                    self.ttfb_ms = self.elapsed_ms()
                self._capture(chunk)
                out = hide_usage.feed(chunk) if hide_usage is not None else chunk
                if self.stream:
                    if held_done and out:
                        out, held_done = held_done + out, b""
                    out, done = split_done(out)
                    held_done += done
                if out:
                    await self._send_body(out, more=True)
        except UpstreamError as exc:
            response.abort()
            self.error_kind, self.error_message = exc.kind, str(exc)
            self._submit()
            raise StreamAborted(str(exc)) from exc
        except BaseException:
            response.abort()
            raise
        response.release()
        tail = hide_usage.flush() if hide_usage is not None else b""
        self._submit()
        self.completed = True
        await self._send_body(tail + held_done, more=False)

    async def _send_body(self, body: bytes, *, more: bool) -> None:
        """Send to the client; one that stops reading for ``proxy.write_timeout_s`` is dropped.

        One watchdog timer per exchange, re-armed at most once per timeout, checks the deadline
        of the send in progress (``asyncio.timeout`` per chunk would cost ~7 us a chunk).
        """
        loop = asyncio.get_running_loop()
        self.send_deadline = loop.time() + self.proxy.write_timeout_s
        if self.write_watch is None:
            self.write_watch = loop.call_at(self.send_deadline, self._check_send)
        try:
            await self.send({"type": "http.response.body", "body": body, "more_body": more})
        finally:
            self.send_deadline = None

    def _check_send(self) -> None:
        self.write_watch = None
        deadline = self.send_deadline
        if deadline is None or self.task is None:
            return  # no send in progress: the next one re-arms the watch
        loop = asyncio.get_running_loop()
        if loop.time() < deadline:
            self.write_watch = loop.call_at(deadline, self._check_send)
            return
        self.too_slow = True
        self.task.cancel()  # raised inside the blocked send; run() turns it into StreamAborted

    def _finish_too_slow(self) -> StreamAborted:
        if self.response is not None and not self.response.finished:
            self.response.abort()  # the upstream stops generating; its slot is free again
        message = (f"the client read nothing for {self.proxy.write_timeout_s:g} s "
                   "(proxy.write_timeout_s): connection dropped")  # fmt: skip
        if not self.completed:
            self.error_kind, self.error_message = ErrorKind.CLIENT_TOO_SLOW, message
            self._submit()
            self.completed = True
        return StreamAborted(message)

    def _capture(self, chunk: bytes) -> None:
        self.capture.add(chunk, self.elapsed_ms() if self.stream else None)

    async def _fail(self, status: int, error_type: str, kind: str, message: str) -> None:
        """Answer with our own OpenAI-shaped error (nothing was relayed yet) and log it."""
        self.status = status
        self.error_kind = kind
        self.error_message = message
        body = error_body(message, error_type, status)
        self.response_content_type = "application/json"
        self.capture.replace(body)
        self._submit()
        self.completed = True
        with contextlib.suppress(OSError):
            await send_json(self.send, status, body, [(b"x-request-id", self.id.encode())])

    def _finish_cancelled(self) -> None:
        self.cancelled = True
        self.error_kind = ErrorKind.CLIENT_DISCONNECTED
        self.error_message = "the client disconnected before the response was complete"
        if not self.status:
            self.status = CLIENT_CLOSED_REQUEST
        self.proxy.metrics.client_disconnects.inc()
        self._submit()

    def _submit(self) -> None:
        header_map = self.header_map
        content_type = header_map.get(b"content-type")
        client_request_id = header_map.get(b"x-request-id")
        latency_ms = self.elapsed_ms()
        capture = self.capture
        exchange = Exchange(
            id=self.id,
            client_request_id=client_request_id.decode("latin-1") if client_request_id else None,
            started_at=self.started_at,
            method=self.scope["method"],
            path=self.scope["path"],
            query=self.scope["query_string"].decode("latin-1"),
            status=self.status,
            latency_ms=latency_ms,
            ttfb_ms=self.ttfb_ms,
            upstream_ms=self.upstream_ms,
            request_content_type=content_type.decode("latin-1") if content_type else None,
            request_body=self.request_body,
            response_content_type=self.response_content_type,
            response_body=capture.body(),
            stream=self.stream,
            usage_injected=self.usage_injected,
            error_kind=self.error_kind,
            error_message=self.error_message,
            cancelled=self.cancelled,
            client_key_hash=self.proxy.hash_client_key(header_map.get(b"authorization")),
            capture_truncated=capture.gap_at is not None,
            chunk_marks=tuple(capture.marks),
            schema_header=_text(header_map.get(b"x-sidecar-schema")),
            response_bytes=capture.total_bytes,
            response_gap_at=capture.gap_at,
        )
        metrics = self.proxy.metrics
        model = metrics.model_label(self.model)
        metrics.requests.labels(model, str(self.status)).inc()
        metrics.request_duration.labels(model).observe(latency_ms / 1000.0)
        if self.error_kind is not None and self.error_kind.startswith("upstream"):
            metrics.upstream_errors.labels(self.error_kind).inc()  # counted here, once
        try:
            self.proxy.sink.submit(exchange)
        except Exception:  # the log must never break the request path
            logger.exception("could not hand request %s to the log queue", self.id)


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None
