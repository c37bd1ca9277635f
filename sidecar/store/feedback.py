"""Feedback rows: find the request a client refers to, upsert one row per (request, user).

A row belongs to the client key that wrote it (``client_key_hash``): an upsert from another key
(or from none, when a key wrote it) changes nothing and returns None, atomically.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.records import Feedback
from sidecar.store.errors import translating
from sidecar.store.tables import feedback_table, requests_table

_UPDATED = ("rating", "score", "satisfied", "escalated", "comment", "updated_at")


@translating
async def find_request_id(engine: AsyncEngine, any_id: str) -> str | None:
    """The ``requests.id`` for our id (X-Request-Id) or the completion's ``id``."""
    table, any_id = requests_table, _text(any_id)
    query = sa.select(table.c.id).where(
        sa.or_(table.c.id == any_id, table.c.completion_id == any_id)
    )
    async with engine.connect() as connection:
        return (await connection.execute(query.limit(1))).scalar_one_or_none()


@translating
async def upsert_feedback(engine: AsyncEngine, feedback: Feedback) -> tuple[Feedback, bool] | None:
    """Insert, or update this user's earlier feedback on the request. Returns (row, created),
    or None when the earlier row belongs to another client key (left as it was)."""
    values = _values(feedback)
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(feedback_table).values(values)
    owner = feedback_table.c.client_key_hash
    statement = insert.on_conflict_do_update(
        index_elements=["request_id", "user_id"],
        set_={name: insert.excluded[name] for name in _UPDATED},
        where=owner.is_not_distinct_from(insert.excluded.client_key_hash),
    ).returning(*feedback_table.c)
    async with engine.begin() as connection:
        row = (await connection.execute(statement)).one_or_none()
    if row is None:
        return None
    stored = _feedback(row._mapping)
    return stored, stored.created_at == stored.updated_at


@translating
async def list_feedback(
    engine: AsyncEngine, request_id: str, *, only_key: str | None = None
) -> list[Feedback]:
    """The request's feedback: every row, or only those written with the key ``only_key``."""
    query = sa.select(feedback_table).where(feedback_table.c.request_id == _text(request_id))
    if only_key is not None:
        query = query.where(feedback_table.c.client_key_hash == only_key)
    query = query.order_by(feedback_table.c.created_at, feedback_table.c.id)
    async with engine.connect() as connection:
        return [_feedback(row._mapping) for row in await connection.execute(query)]


def _text(value: str) -> str:
    """Postgres text cannot hold NUL: stored as U+FFFD, as the request writer does."""
    return value.replace("\x00", "\ufffd")


def _values(feedback: Feedback) -> dict[str, Any]:
    return {
        "request_id": _text(feedback.request_id), "user_id": _text(feedback.user_id),
        "rating": feedback.rating, "score": feedback.score, "satisfied": feedback.satisfied,
        "escalated": feedback.escalated,
        "comment": None if feedback.comment is None else _text(feedback.comment),
        "created_at": feedback.created_at, "updated_at": feedback.updated_at,
        "client_key_hash": feedback.client_key_hash,
    }  # fmt: skip


def _feedback(row: Any) -> Feedback:
    return Feedback(
        request_id=row["request_id"], user_id=row["user_id"], rating=row["rating"],
        score=row["score"], satisfied=bool(row["satisfied"]), escalated=bool(row["escalated"]),
        comment=row["comment"], created_at=row["created_at"],
        updated_at=row["updated_at"], client_key_hash=row["client_key_hash"],
    )  # fmt: skip
