"""The admin port: ``/metrics``, ``/healthz``, ``/readyz`` (litestar)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from litestar import Litestar, Request, Response, get
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sidecar.metrics import SidecarMetrics


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, str]


def create_admin_app(
    metrics: SidecarMetrics, readiness: Callable[[], Readiness], *, token: str | None
) -> Litestar:
    """The admin ASGI app. With ``token`` set, every route but the probes needs ``Bearer <token>``."""

    def require_token(connection: ASGIConnection, handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
        if token is None:
            return
        supplied = connection.headers.get("authorization", "")
        scheme, _sep, value = supplied.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(value.strip(), token):
            raise NotAuthorizedException(
                "admin token required: send Authorization: Bearer <admin.token>"
            )

    @get("/metrics", guards=[require_token], sync_to_thread=False)
    def metrics_endpoint() -> Response[bytes]:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @get("/healthz", sync_to_thread=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", sync_to_thread=False)
    def readyz(request: Request) -> Response[dict[str, object]]:  # type: ignore[type-arg]
        state = readiness()
        body: dict[str, object] = {"ready": state.ready, "checks": state.checks}
        return Response(body, status_code=200 if state.ready else 503)

    return Litestar(
        route_handlers=[metrics_endpoint, healthz, readyz], openapi_config=None, debug=False
    )
