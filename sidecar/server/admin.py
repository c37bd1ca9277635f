"""The admin port: ``/metrics``, ``/healthz``, ``/readyz``, reports and alerts (litestar).

Errors never surface as a bare 500: a store that cannot be reached (database down, backends
terminated, a statement timeout) answers ``503`` with the reason in the JSON body and is logged
once when the outage starts and once when it ends, not per request; a malformed
``Authorization`` header (non-ASCII bytes, no scheme) is ``401`` like a wrong token. Anything
else unexpected is logged with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from litestar import Litestar, Request, Response, get
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    ValidationException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, FromQuery
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.errors import StoreUnavailable
from sidecar.metrics import SidecarMetrics
from sidecar.records import TimeWindow
from sidecar.reports.base import REPORTS, ReportOptions, parse_since, run_report
from sidecar.reports.catalog import load_reports
from sidecar.reports.render import as_csv
from sidecar.settings import CostSettings
from sidecar.store.alerts import load_states, recent_events
from sidecar.store.errors import is_connectivity_error
from sidecar.tokens import bearer_matches

logger = logging.getLogger("sidecar.server.admin")
T = TypeVar("T")
RETRY_AFTER_S = 5


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, str]


class StoreOutage:
    """The admin port's view of the store: logs an outage when it starts and when it ends."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def failed(self, exc: BaseException) -> str:
        reason = outage_reason(exc)
        if self.reason is None:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            logger.warning("admin API: store unavailable, answering 503 until it is back: %s (%s)",
                           reason, first_line[:300])  # fmt: skip
        self.reason = reason
        return reason

    def answered(self) -> None:
        if self.reason is not None:
            logger.info("admin API: the store answers again")
            self.reason = None


def outage_reason(exc: BaseException) -> str:
    """A short reason for the 503 body: never SQL, parameters or the database URL."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or any(error is other for other in seen):
            continue
        seen.append(error)
        if (getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)) == "57014":
            return "the query ran past database.statement_timeout_s"
        pending += [getattr(error, "orig", None), error.__cause__]
    root = seen[-1] if len(seen) > 1 else exc
    return f"database unreachable ({type(root).__name__})"


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

    outage = StoreOutage()

    def require_token(connection: ASGIConnection, handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
        if token is None:
            return
        if not bearer_matches(connection.headers.get("authorization"), token):
            raise NotAuthorizedException(
                "admin token required: send Authorization: Bearer <admin.token>"
            )

    async def from_store(call: Callable[[AsyncEngine], Awaitable[T]]) -> T:
        """``call(engine)``; an unreachable store becomes StoreUnavailable (a 503)."""
        store = engine() if engine is not None else None
        if store is None:
            raise StoreUnavailable("the store is not open yet")
        try:
            result = await call(store)
        except Exception as exc:
            if not is_connectivity_error(exc):
                raise
            raise StoreUnavailable(outage.failed(exc)) from exc
        outage.answered()
        return result

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
            window = TimeWindow(parse_since(since, now), parse_since(until, now) if until else now,
                                model, adapter)  # fmt: skip
        except ValueError as exc:
            raise ValidationException(str(exc)) from exc
        options = ReportOptions(by, cost or CostSettings())
        table = await from_store(
            lambda store: run_report(store, name, window, options, timeout_s=report_timeout_s)
        )
        if format == "csv":
            return Response(as_csv(table), media_type="text/csv")
        return Response({"report": table.title, "rows": table.records(), "notes": table.notes})

    @get("/alerts", guards=[require_token])
    async def show_alerts() -> dict[str, Any]:
        async def read(store: AsyncEngine) -> tuple[Any, Any]:
            async with store.connect() as connection:
                return await load_states(connection), await recent_events(connection)

        states, events = await from_store(read)
        active = [
            {"rule": state.rule, "scope": dict(state.scope), "status": state.status,
             "value": state.value, "since": (state.fired_at or state.active_since)}
            for state in states.values() if state.status != "inactive"
        ]  # fmt: skip
        return {"active": active, "recent": events}

    return Litestar(
        route_handlers=[metrics_endpoint, healthz, readyz, list_reports, show_report, show_alerts],
        openapi_config=None,
        exception_handlers={StoreUnavailable: store_unavailable},
        after_exception=[log_unexpected],
        debug=False,
        logging_config=None,  # the CLI configured logging (log_level); Litestar must not reset it
    )


def store_unavailable(_: Request[Any, Any, Any], exc: StoreUnavailable) -> Response[Any]:
    body = {"status_code": 503, "detail": "the store is unavailable; retry later",
            "reason": str(exc)}  # fmt: skip
    return Response(body, status_code=503, headers={"retry-after": str(RETRY_AFTER_S)})


def log_unexpected(exc: Exception, _: Any) -> None:
    """Litestar answers 500 to anything unhandled; without this it would log nothing."""
    if not isinstance(exc, HTTPException | StoreUnavailable):
        logger.error("admin API: unexpected error", exc_info=exc)
