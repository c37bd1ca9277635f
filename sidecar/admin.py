"""The admin port: ``/metrics``, ``/healthz``, ``/readyz`` (litestar)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    ServiceUnavailableException,
    ValidationException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, FromQuery
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.metrics import SidecarMetrics
from sidecar.reports.base import REPORTS, ReportWindow, parse_since, run_report
from sidecar.reports.catalog import load_reports
from sidecar.reports.render import as_csv
from sidecar.settings import CostSettings
from sidecar.store.alerts import load_states, recent_events


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, str]


def create_admin_app(
    metrics: SidecarMetrics,
    readiness: Callable[[], Readiness],
    *,
    token: str | None,
    engine: Callable[[], AsyncEngine | None] | None = None,
    report_timeout_s: float = 30.0,
    cost: CostSettings | None = None,
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

    @get("/reports", guards=[require_token], sync_to_thread=False)
    def list_reports() -> dict[str, str]:
        load_reports()
        return {name: report.description for name, report in sorted(REPORTS.items())}

    @get("/reports/{name:str}", guards=[require_token])
    async def show_report(
        name: FromPath[str],
        since: FromQuery[str] = "24h",
        until: FromQuery[str | None] = None,
        model: FromQuery[str | None] = None,
        adapter: FromQuery[str | None] = None,
        by: FromQuery[str | None] = None,
        format: FromQuery[str] = "json",
    ) -> Response[Any]:
        load_reports()
        if name not in REPORTS:
            raise NotFoundException(f"unknown report {name!r}; known: {', '.join(sorted(REPORTS))}")
        if by not in (None, "hour", "day") or format not in ("json", "csv"):
            raise ValidationException("by must be hour or day; format must be json or csv")
        now = datetime.now(UTC)
        try:
            window = ReportWindow(parse_since(since, now), parse_since(until, now) if until else now,
                                  model, adapter, by, cost or CostSettings())  # fmt: skip
        except ValueError as exc:
            raise ValidationException(str(exc)) from exc
        store = engine() if engine is not None else None
        if store is None:
            raise ServiceUnavailableException("the store is not open yet")
        table = await run_report(store, name, window, timeout_s=report_timeout_s)
        if format == "csv":
            return Response(as_csv(table), media_type="text/csv")
        return Response({"report": table.title, "rows": table.records(), "notes": table.notes})

    @get("/alerts", guards=[require_token])
    async def show_alerts() -> dict[str, Any]:
        store = engine() if engine is not None else None
        if store is None:
            raise ServiceUnavailableException("the store is not open yet")
        async with store.connect() as connection:
            states = await load_states(connection)
            events = await recent_events(connection)
        active = [
            {"rule": state.rule, "scope": dict(state.scope), "status": state.status,
             "value": state.value, "since": (state.fired_at or state.active_since)}
            for state in states.values() if state.status != "inactive"
        ]  # fmt: skip
        return {"active": active, "recent": events}

    return Litestar(
        route_handlers=[metrics_endpoint, healthz, readyz, list_reports, show_report, show_alerts],
        openapi_config=None,
        debug=False,
        logging_config=None,  # the CLI configured logging (log_level); Litestar must not reset it
    )
