"""The ``/sidecar/v1/feedback`` routes (litestar), mounted on the proxy port.

Ownership: a rating is one row per (request, user) and belongs to the client key that wrote it
(the hash of its ``Authorization`` header, as ``requests.client_key_hash``). Posting for the same
request and user with another key, or without the key, answers 403 and changes nothing. Reading
needs a key: the admin token (``admin.token``) sees every rating of the request, any other key
only the ratings it wrote; no ``Authorization`` at all answers 401.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromQuery
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.asgi_types import ASGIApp
from sidecar.errors import StoreUnavailable
from sidecar.feedback.body import BodyError, parse_feedback
from sidecar.metrics import SidecarMetrics
from sidecar.records import Feedback
from sidecar.store.feedback import find_request_id, list_feedback, upsert_feedback
from sidecar.tokens import ClientKeyHasher, bearer_matches

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


def _authorization(request: Request[Any, Any, Any]) -> bytes | None:
    """The raw ``Authorization`` value, as the proxy hashes it for ``requests.client_key_hash``."""
    headers = request.scope["headers"]
    return next((value for name, value in headers if name.lower() == b"authorization"), None)


def create_feedback_app(
    engine: Callable[[], AsyncEngine | None],
    metrics: SidecarMetrics,
    pending_log: Callable[[], bool],
    *,
    admin_token: str | None = None,
) -> ASGIApp:
    """The routes as one ASGI app, for the proxy to mount under ``/sidecar/``. ``engine`` and
    ``pending_log`` are read per request (the engine exists once started); ``admin_token``
    reads every rating (None: each key reads only its own)."""
    hash_key = ClientKeyHasher()

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
            owner = hash_key(_authorization(request))
            resolved = dataclasses.replace(parsed, request_id=request_id, client_key_hash=owner)
            upserted = await upsert_feedback(store, resolved)
        except StoreUnavailable as exc:
            return _error(
                503, f"feedback cannot be stored right now: {exc}", "ServiceUnavailableError"
            )
        if upserted is None:
            return _error(
                403,
                f"request {request_id!r} already has a rating from this user, written with "
                "another client key; only that key can change it (rate under another user)",
                "PermissionDeniedError",
                "user",
            )
        stored, created = upserted
        metrics.feedback.labels(stored.rating).inc()
        return Response(_as_json(stored), status_code=201 if created else 200)

    @get("/sidecar/v1/feedback")
    async def read(request: Request[Any, Any, Any], request_id: FromQuery[str]) -> Response[Any]:
        authorization = _authorization(request)
        if not authorization:
            return _error(
                401,
                "reading feedback needs a key: send Authorization: Bearer <admin.token> for "
                "every rating, or the client key that wrote the ratings for its own",
                "AuthenticationError",
            )
        admin = admin_token is not None and bearer_matches(authorization, admin_token)
        only_key = None if admin else hash_key(authorization)
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
            rows = await list_feedback(store, resolved, only_key=only_key)
        except StoreUnavailable as exc:
            return _error(
                503, f"feedback cannot be read right now: {exc}", "ServiceUnavailableError"
            )
        return Response({"request_id": resolved, "feedback": [_as_json(row) for row in rows]})

    def not_found(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        kind = "NotFoundError" if exc.status_code == 404 else "BadRequestError"
        return _error(exc.status_code, exc.detail, kind)

    app = Litestar(
        route_handlers=[give, read],
        openapi_config=None,
        request_max_body_size=MAX_BODY_BYTES,
        exception_handlers={HTTPException: not_found},
        logging_config=None,  # the CLI configured logging (log_level); Litestar must not reset it
    )
    return cast(ASGIApp, app)
