"""The proxy ASGI app: forward every path except ``/sidecar/``, relay bytes, capture an Exchange.

The hot path does, per request: read the body, parse it once when it is JSON
(to learn the model and whether to ask for stream usage), forward, relay the
response as it arrives, then hand one :class:`Exchange` to the sink (a single
spool append) before the client's response is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from sidecar.errors import UpstreamError
from sidecar.metrics import SidecarMetrics
from sidecar.proxy.capture import ClientKeyHasher, ExchangeSink, new_request_id
from sidecar.proxy.headers import client_response_headers, upstream_request_headers
from sidecar.proxy.responses import error_body, send_json
from sidecar.proxy.sse import UsageChunkFilter, split_done
from sidecar.proxy.upstream import UpstreamClient, UpstreamResponse
from sidecar.records import ErrorKind, Exchange
from sidecar.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("sidecar.proxy")

RESERVED_PREFIX = "/sidecar/"
STREAM_USAGE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
BODY_READ_TIMEOUT_S = 60.0
WHOLE_BODY_LIMIT = 4 * 1024 * 1024  # larger non-stream responses are relayed chunk by chunk
CLIENT_CLOSED_REQUEST = 499  # nginx's status for "the client went away first"
DISCONNECT_WATCH_AFTER_S = 0.01


class StreamAborted(Exception):
    """Raised after headers were sent, so the ASGI server drops the client connection."""


class _RequestTooLarge(Exception):
    pass


ADAPTER_CHANGE_PATHS = frozenset({"/v1/load_lora_adapter", "/v1/unload_lora_adapter"})


class ProxyApp:
    """ASGI app for the proxy port."""

    def __init__(
        self,
        settings: Settings,
        upstream: UpstreamClient,
        sink: ExchangeSink,
        metrics: SidecarMetrics,
        sidecar_app: ASGIApp | None = None,
        after_adapter_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.upstream = upstream
        # Awaited before a successful LoRA load/unload answer reaches the client, so that the
        # client's next request already resolves to the right adapter.
        self.after_adapter_change = after_adapter_change
        self.sink = sink
        self.metrics = metrics
        self.sidecar_app = sidecar_app
        self.max_body_bytes = settings.proxy.max_body_bytes
        self.max_capture_bytes = settings.proxy.max_capture_bytes
        self.inject_stream_usage = settings.proxy.inject_stream_usage
        self.upstream_api_key = settings.upstream.api_key
        self.hash_client_key = ClientKeyHasher()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1003})
            return
        if not (scope.get("raw_path") or scope["path"].encode()).startswith(b"/"):
            # OPTIONS * and other non-path targets: nothing upstream could serve them.
            body = error_body("the request target must be a path starting with /",
                              "BadRequestError", 400)  # fmt: skip
            await send_json(send, 400, body)
            return
        if scope["path"].startswith(RESERVED_PREFIX):
            if self.sidecar_app is not None:
                await self.sidecar_app(scope, receive, send)
            else:
                body = error_body(f"no sidecar route {scope['path']}", "NotFoundError", 404)
                await send_json(send, 404, body)
            return
        self.metrics.in_flight.inc()
        try:
            await _Exchange(self, scope, receive, send).run()
        finally:
            self.metrics.in_flight.dec()


class _Exchange:
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
        self.captured: list[bytes] = []
        self.captured_bytes = 0
        self.capture_truncated = False
        self.chunk_marks: list[tuple[int, float]] = []
        self.stream = False
        self.usage_injected = False
        self.error_kind: str | None = None
        self.error_message: str | None = None
        self.cancelled = False
        self.completed = False
        self.client_gone = False

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
        try:
            await self._forward(headers, upstream_body)
        except asyncio.CancelledError:
            if not self.client_gone:
                raise
            task.uncancel()
            self._finish_cancelled()
        finally:
            start_watching.cancel()
            for future in watcher:
                future.cancel()

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
        self.upstream_ms = (time.perf_counter() - sent_at) * 1000.0
        if not 100 <= response.status <= 599:  # no HTTP server can send that on to the client
            response.abort()
            message = f"the upstream answered with an invalid HTTP status {response.status}"
            await self._fail(502, "BadGateway", ErrorKind.UPSTREAM_ERROR, message)
            return
        self.status = response.status
        if response.status >= 500:
            self.error_kind = ErrorKind.UPSTREAM_ERROR
        self.response_content_type = response.content_type
        self.stream = (self.response_content_type or "").startswith("text/event-stream")
        length = response.content_length
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
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

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
                    await send({"type": "http.response.body", "body": out, "more_body": True})
        except UpstreamError as exc:
            response.abort()
            self.error_kind, self.error_message = exc.kind, str(exc)
            self.proxy.metrics.upstream_errors.labels(exc.kind).inc()
            self._submit()
            raise StreamAborted(str(exc)) from exc
        except BaseException:
            response.abort()
            raise
        response.release()
        tail = hide_usage.flush() if hide_usage is not None else b""
        self._submit()
        self.completed = True
        await send({"type": "http.response.body", "body": tail + held_done, "more_body": False})

    def _capture(self, chunk: bytes) -> None:
        if self.captured_bytes + len(chunk) > self.proxy.max_capture_bytes:
            self.capture_truncated = True
            return
        self.captured.append(chunk)
        self.captured_bytes += len(chunk)
        if self.stream:
            self.chunk_marks.append((self.captured_bytes, self.elapsed_ms()))

    async def _fail(self, status: int, error_type: str, kind: str, message: str) -> None:
        """Answer with our own OpenAI-shaped error (nothing was relayed yet) and log it."""
        self.status = status
        self.error_kind = kind
        self.error_message = message
        if kind.startswith("upstream"):
            self.proxy.metrics.upstream_errors.labels(kind).inc()
        body = error_body(message, error_type, status)
        self.response_content_type = "application/json"
        self.captured = [body]
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
            response_body=b"".join(self.captured),
            stream=self.stream,
            usage_injected=self.usage_injected,
            error_kind=self.error_kind,
            error_message=self.error_message,
            cancelled=self.cancelled,
            client_key_hash=self.proxy.hash_client_key(header_map.get(b"authorization")),
            capture_truncated=self.capture_truncated,
            chunk_marks=tuple(self.chunk_marks),
            schema_header=_text(header_map.get(b"x-sidecar-schema")),
        )
        metrics = self.proxy.metrics
        model = metrics.model_label(self.model)
        metrics.requests.labels(model, str(self.status)).inc()
        metrics.request_duration.labels(model).observe(latency_ms / 1000.0)
        if self.error_kind == ErrorKind.UPSTREAM_ERROR:
            metrics.upstream_errors.labels(self.error_kind).inc()
        try:
            self.proxy.sink.submit(exchange)
        except Exception:  # the log must never break the request path
            logger.exception("could not hand request %s to the log queue", self.id)


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None
