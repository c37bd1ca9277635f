"""The proxy ASGI app: forward every path except ``/sidecar/``; each request is a
:class:`~sidecar.proxy.relay.ProxiedRequest` (relay bytes, capture an Exchange).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sidecar.asgi_types import ASGIApp, ASGIReceive, ASGIScope, ASGISend
from sidecar.metrics import SidecarMetrics
from sidecar.proxy.capture import ExchangeSink
from sidecar.proxy.relay import ProxiedRequest, StreamAborted
from sidecar.proxy.responses import error_body, send_json
from sidecar.proxy.upstream import UpstreamClient
from sidecar.settings import Settings
from sidecar.tokens import ClientKeyHasher

__all__ = ["ProxyApp", "StreamAborted"]

RESERVED_PREFIX = "/sidecar/"


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
        self.body_timeout_s = settings.proxy.body_timeout_s
        # Non-stream responses up to this size are read whole; larger ones go chunk by chunk.
        self.max_buffered_response_bytes = settings.proxy.max_buffered_response_bytes
        # The log stores bodies up to request_log.max_body_bytes: keep no more of a response.
        self.keep_bytes = min(settings.proxy.max_capture_bytes, settings.request_log.max_body_bytes)
        self.write_timeout_s = settings.proxy.write_timeout_s
        self.inject_stream_usage = settings.proxy.inject_stream_usage
        self.upstream_api_key = settings.upstream.api_key
        self.hash_client_key = ClientKeyHasher()

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
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
            await ProxiedRequest(self, scope, receive, send).run()
        finally:
            self.metrics.in_flight.dec()
