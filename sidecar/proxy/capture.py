"""Small pure pieces of the capture: what is kept of a response, request ids, client identity,
the sink protocol."""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections import deque
from typing import Any, Protocol

import orjson

from sidecar.records import Exchange


class ExchangeSink(Protocol):
    """Where the proxy hands each finished exchange (the durable log queue)."""

    def submit(self, exchange: Exchange) -> None: ...


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


class ClientKeyHasher:
    """Hash API keys to a short stable identity; the key itself is never stored."""

    __slots__ = ("_cache",)
    _MAX_CACHED = 4096

    def __init__(self) -> None:
        self._cache: dict[bytes, str] = {}

    def __call__(self, authorization: bytes | None) -> str | None:
        if not authorization:
            return None
        cached = self._cache.get(authorization)
        if cached is not None:
            return cached
        _, _, token = authorization.partition(b" ")
        digest = hashlib.sha256(token.strip() or authorization).hexdigest()[:16]
        if len(self._cache) >= self._MAX_CACHED:
            self._cache.clear()
        self._cache[authorization] = digest
        return digest


_HEAD_STRING = re.compile(rb'"(id|object|model)":"((?:[^"\\]|\\.)*)"')
_HEAD_CREATED = re.compile(rb'"created":(\d+)')
_FINISH_REASON = re.compile(rb'"finish_reason":"((?:[^"\\]|\\.)*)"')
_USAGE_KEY = b'"usage":{'


def cut_json_summary(body: bytes, gap_at: int) -> dict[str, Any]:
    """What a JSON response captured with its middle dropped still tells: the head's ``id``,
    ``object``, ``created`` and ``model``, the tail's ``usage`` and last ``finish_reason``.

    Shaped like the response (``choices`` holds only the finish reason), so the row builder reads
    it like a whole body. Fields not found are left out.
    """
    head, tail = body[: min(gap_at, 4096)], body[gap_at:]
    summary: dict[str, Any] = {}
    for match in _HEAD_STRING.finditer(head):
        key = match.group(1).decode()
        if key not in summary:
            summary[key] = _json_string(match.group(2))
    created = _HEAD_CREATED.search(head)
    if created is not None:
        summary["created"] = int(created.group(1))
    finish = None
    for finish in _FINISH_REASON.finditer(tail):  # noqa: B007 - the last one
        pass
    if finish is not None:
        summary["choices"] = [{"index": 0, "finish_reason": _json_string(finish.group(1))}]
    start = tail.rfind(_USAGE_KEY)
    if start >= 0:
        usage = _json_object_at(tail, start + len(_USAGE_KEY) - 1)
        if usage is not None:
            summary["usage"] = usage
    return summary


def _json_string(raw: bytes) -> str | None:
    try:
        value = orjson.loads(b'"' + raw + b'"')
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, str) else None


def _json_object_at(data: bytes, start: int) -> dict[str, Any] | None:
    """The JSON object that starts at ``data[start]`` (``{``), when it ends within ``data``."""
    depth = 0
    in_string = escaped = False
    for index in range(start, len(data)):
        byte = data[index]
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte == 0x7B:  # {
            depth += 1
        elif byte == 0x7D:  # }
            depth -= 1
            if depth == 0:
                try:
                    value = orjson.loads(data[start : index + 1])
                except orjson.JSONDecodeError:
                    return None
                return value if isinstance(value, dict) else None
    return None
