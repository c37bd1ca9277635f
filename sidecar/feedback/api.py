"""The ``/sidecar/v1/feedback`` routes (litestar), mounted on the proxy port."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromQuery
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.errors import StoreUnavailable
from sidecar.feedback.body import BodyError, parse_feedback
from sidecar.metrics import SidecarMetrics
from sidecar.records import Feedback
from sidecar.store.feedback import find_request_id, list_feedback, upsert_feedback

MAX_BODY_BYTES = 64 * 1024
WRITER_CATCH_UP_S = 3.0  # a response logged a moment ago may still be in the spool


def _error(status: int, message: str, error_type: str, param: str | None = None) -> Response[Any]:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": status}}
    return Response(body, status_code=status)


def _as_json(feedback: Feedback) -> dict[str, Any]:
    document = dataclasses.asdict(feedback)
    for key in ("created_at", "updated_at"):
        document[key] = document[key].isoformat()
    return document


def create_feedback_app(
    engine: Callable[[], AsyncEngine | None],
    metrics: SidecarMetrics,
    pending_log: Callable[[], bool],
) -> Litestar:
    """``engine`` and ``pending_log`` are read per request (the engine exists once started)."""

    async def resolve(any_id: str) -> str | None:
        store = engine()
        assert store is not None, "the sidecar is not started"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WRITER_CATCH_UP_S
        while True:
            found = await find_request_id(store, any_id)
            if found is not None or not pending_log() or loop.time() > deadline:
                return found
            await asyncio.sleep(0.05)

    @post("/sidecar/v1/feedback", status_code=201)
    async def give(request: Request[Any, Any, Any]) -> Response[Any]:
        parsed = parse_feedback(await request.body(), datetime.now(UTC))
        if isinstance(parsed, BodyError):
            kind = "BadRequestError" if parsed.status == 400 else "UnprocessableEntityError"
            return _error(parsed.status, parsed.message, kind, parsed.field)
        try:
            request_id = await resolve(parsed.request_id)
            if request_id is None:
                return _error(
                    404,
                    f"no logged request has the id {parsed.request_id!r}",
                    "NotFoundError",
                    "request_id",
                )
            store = engine()
            assert store is not None
            resolved = dataclasses.replace(parsed, request_id=request_id)
            stored, created = await upsert_feedback(store, resolved)
        except StoreUnavailable as exc:
            return _error(
                503, f"feedback cannot be stored right now: {exc}", "ServiceUnavailableError"
            )
        metrics.feedback.labels(stored.rating).inc()
        return Response(_as_json(stored), status_code=201 if created else 200)

    @get("/sidecar/v1/feedback")
    async def read(request_id: FromQuery[str]) -> Response[Any]:
        try:
            resolved = await resolve(request_id)
            if resolved is None:
                return _error(
                    404,
                    f"no logged request has the id {request_id!r}",
                    "NotFoundError",
                    "request_id",
                )
            store = engine()
            assert store is not None
            rows = await list_feedback(store, resolved)
        except StoreUnavailable as exc:
            return _error(
                503, f"feedback cannot be read right now: {exc}", "ServiceUnavailableError"
            )
        return Response({"request_id": resolved, "feedback": [_as_json(row) for row in rows]})

    def not_found(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        kind = "NotFoundError" if exc.status_code == 404 else "BadRequestError"
        return _error(exc.status_code, exc.detail, kind)

    return Litestar(
        route_handlers=[give, read],
        openapi_config=None,
        request_max_body_size=MAX_BODY_BYTES,
        exception_handlers={HTTPException: not_found},
        logging_config=None,  # the CLI configured logging (log_level); Litestar must not reset it
    )
