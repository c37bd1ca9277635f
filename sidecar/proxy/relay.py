"""One request through the proxy, on the sockets: read the body, forward, relay, watch the client.

The hot path does, per request: read the body, parse it once when it is JSON (to learn the
model and whether to ask for stream usage), forward, relay the response as it arrives, then
hand one :class:`~sidecar.records.Exchange` to the sink (a single spool append) before the
client's response is complete. What the exchange tells the log is gathered in its
:class:`~sidecar.proxy.capture.Capture`; this module only does the I/O. A client that stops
reading is dropped after ``proxy.write_timeout_s``; the upstream connection slot is freed
whatever ends the exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from sidecar.asgi_types import ASGIReceive, ASGIScope, ASGISend
from sidecar.errors import UpstreamError
from sidecar.proxy.capture import Capture, new_request_id, observe
from sidecar.proxy.headers import client_response_headers, upstream_request_headers
from sidecar.proxy.responses import error_body, send_json
from sidecar.proxy.upstream import UpstreamResponse
from sidecar.records import ErrorKind
from sidecar.wire.sse import UsageChunkFilter, split_done

if TYPE_CHECKING:
    from sidecar.proxy.app import ProxyApp

logger = logging.getLogger("sidecar.proxy")

STREAM_USAGE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
DISCONNECT_WATCH_AFTER_S = 0.01
ADAPTER_CHANGE_PATHS = frozenset({"/v1/load_lora_adapter", "/v1/unload_lora_adapter"})


class StreamAborted(Exception):
    """Raised after headers were sent, so the ASGI server drops the client connection."""


class _RequestTooLarge(Exception):
    pass


class ProxiedRequest:
    """One request through the proxy: the socket and timer state; the facts go to :attr:`capture`."""

    __slots__ = ("capture", "client_gone", "completed", "proxy", "receive", "response", "scope",
                 "send", "send_deadline", "task", "too_slow", "write_watch")  # fmt: skip

    def __init__(
        self, proxy: ProxyApp, scope: ASGIScope, receive: ASGIReceive, send: ASGISend
    ) -> None:
        self.proxy = proxy
        self.scope = scope
        self.receive = receive
        self.send = send
        started_at = time.time()
        headers: dict[bytes, bytes] = dict(scope["headers"])  # lower-case names
        self.capture = Capture(
            new_request_id(started_at), time.perf_counter(), started_at, scope["method"],
            scope["path"], scope["query_string"], headers, keep_bytes=proxy.keep_bytes,
            client_key_hash=proxy.hash_client_key(headers.get(b"authorization")),
        )  # fmt: skip
        self.response: UpstreamResponse | None = None  # until released or aborted
        self.completed = False
        self.client_gone = False
        self.task: asyncio.Task[Any] | None = None
        self.send_deadline: float | None = None  # of the send to the client in progress
        self.write_watch: asyncio.TimerHandle | None = None
        self.too_slow = False

    async def run(self) -> None:
        capture = self.capture
        try:
            capture.request_body = await self._read_body()
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
            await self._forward(upstream_body)
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
        timeout_s = self.proxy.body_timeout_s
        declared = self.capture.headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _RequestTooLarge
        async with asyncio.timeout(timeout_s):  # a body that never comes: 408
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
        async with asyncio.timeout(timeout_s):
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
        capture = self.capture
        body = capture.request_body
        if self.scope["method"] != "POST" or not body:
            return body
        content_type = capture.headers.get(b"content-type")
        if content_type is None or not content_type.startswith(b"application/json"):
            return body
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body  # the upstream answers malformed JSON itself
        if not isinstance(payload, dict):
            return body
        model = payload.get("model")
        capture.model = model if isinstance(model, str) else None
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
                capture.usage_injected = True
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

    async def _forward(self, body: bytes) -> None:
        proxy, scope, capture = self.proxy, self.scope, self.capture
        sent_at = time.perf_counter()
        try:
            response = await proxy.upstream.send(
                scope["method"],
                scope.get("raw_path") or scope["path"].encode(),
                scope["query_string"],
                upstream_request_headers(scope["headers"], api_key=proxy.upstream_api_key),
                body,
            )
        except UpstreamError as exc:
            await self._fail(exc.status, exc.error_type, exc.kind, str(exc))
            return
        self.response = response
        capture.upstream_ms = (time.perf_counter() - sent_at) * 1000.0
        if not 100 <= response.status <= 599:  # no HTTP server can send that on to the client
            response.abort()
            message = f"the upstream answered with an invalid HTTP status {response.status}"
            await self._fail(502, "BadGateway", ErrorKind.UPSTREAM_ERROR, message)
            return
        length = response.content_length
        capture.on_response(response.status, response.content_type, length)
        if capture.stream or length is None or length > proxy.max_buffered_response_bytes:
            await self._relay_stream(response)
        else:
            await self._relay_whole(response)

    async def _relay_whole(self, response: UpstreamResponse) -> None:
        capture = self.capture
        try:
            body = await response.read()
        except UpstreamError as exc:
            response.abort()
            await self._fail(exc.status, exc.error_type, exc.kind, str(exc))
            return
        response.release()
        capture.on_chunk(body, time.perf_counter())
        headers = client_response_headers(
            response.raw_headers, request_id=capture.id.encode(), keep_length=True
        )
        self._submit()
        self.completed = True
        hook = self.proxy.after_adapter_change
        status = capture.status
        changed = self.scope["path"] in ADAPTER_CHANGE_PATHS and 200 <= status < 300
        if hook is not None and changed:
            await hook()
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send_body(body, more=False)

    async def _relay_stream(self, response: UpstreamResponse) -> None:
        send, capture = self.send, self.capture
        stream = capture.stream
        hide_usage = UsageChunkFilter() if capture.usage_injected and stream else None
        headers = client_response_headers(
            response.raw_headers, request_id=capture.id.encode(), keep_length=hide_usage is None
        )
        await send({"type": "http.response.start", "status": capture.status, "headers": headers})
        held_done = b""
        on_chunk, clock = capture.on_chunk, time.perf_counter
        try:
            async for chunk in response.iter_chunks():
                on_chunk(chunk, clock())
                out = hide_usage.feed(chunk) if hide_usage is not None else chunk
                if stream:
                    if held_done and out:
                        out, held_done = held_done + out, b""
                    out, done = split_done(out)
                    held_done += done
                if out:
                    await self._send_body(out, more=True)
        except UpstreamError as exc:
            response.abort()
            capture.on_error(exc.kind, str(exc))
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
            self.capture.on_error(ErrorKind.CLIENT_TOO_SLOW, message)
            self._submit()
            self.completed = True
        return StreamAborted(message)

    async def _fail(self, status: int, error_type: str, kind: str, message: str) -> None:
        """Answer with our own OpenAI-shaped error (nothing was relayed yet) and log it."""
        body = error_body(message, error_type, status)
        self.capture.on_sidecar_answer(status, kind, message, body)
        self._submit()
        self.completed = True
        with contextlib.suppress(OSError):
            await send_json(self.send, status, body, [(b"x-request-id", self.capture.id.encode())])

    def _finish_cancelled(self) -> None:
        self.capture.on_client_gone()
        self._submit()

    def _submit(self) -> None:
        """Hand the exchange to the sink and count it: once per exchange, whatever ended it."""
        capture = self.capture
        exchange = capture.to_exchange(time.perf_counter())
        observe(exchange, capture.model, self.proxy.metrics)
        try:
            self.proxy.sink.submit(exchange)
        except Exception:  # the log must never break the request path
            logger.exception("could not hand request %s to the log queue", capture.id)
