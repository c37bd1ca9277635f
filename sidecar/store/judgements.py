"""Judge work in the store: claiming samples (once across replicas), results, budget spent.

Claiming is an ``INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING`` into ``judgements``
keyed by the request id: when two replicas pick the same candidates, the second insert waits for
the first and then skips them, so every request is judged at most once, with no transaction held
open during the (slow) judge call. A claim its replica never finished (killed mid-call) is taken
over after ``claim_timeout_s``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sidecar.records import (
    JUDGEABLE_PATHS,
    ClaimedRequest,
    JudgementResult,
    SampleReason,
    TimeWindow,
)
from sidecar.store.errors import translating
from sidecar.store.locks import LockKey, session_lock
from sidecar.store.tables import feedback_table, judgements_table, requests_table
from sidecar.store.windows import within

CLAIMED, SCORED, ERROR, UNJUDGEABLE = "claimed", "scored", "error", "unjudgeable"


def _insert(connection: AsyncConnection) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(judgements_table)


def _unjudged(request_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    judged = judgements_table.c.request_id
    return ~sa.exists(sa.select(judged).where(judged == request_id))


async def _claim_from(
    connection: AsyncConnection, source: sa.Select[Any], replica: str, now: datetime
) -> list[str]:
    """Insert claims for the rows ``source`` selects; return the ids this call claimed."""
    columns = [
        "request_id",
        "request_started_at",
        "model",
        "adapter",
        "sample_reason",
        "status",
        "claimed_by",
        "claimed_at",
        "attempts",
    ]
    picked = source.subquery()
    rows = sa.select(
        picked.c.id, picked.c.started_at, picked.c.model, picked.c.adapter, picked.c.reason,
        sa.literal(CLAIMED), sa.literal(replica), sa.literal(now, judgements_table.c.claimed_at.type),
        sa.literal(0),
    ).where(sa.true())  # fmt: skip  # (the WHERE keeps SQLite's parser from reading ON as a join)
    statement = (
        _insert(connection)
        .from_select(columns, rows)
        .on_conflict_do_nothing(index_elements=["request_id"])
        .returning(judgements_table.c.request_id)
    )
    return [row[0] for row in await connection.execute(statement)]


@translating
async def claim_samples(
    engine: AsyncEngine,
    *,
    replica: str,
    now: datetime,
    lookback_s: float,
    limit: int,
    thumbs_down: bool,
    claim_timeout_s: float,
) -> list[str]:
    """Claim up to ``limit`` requests: abandoned claims, then samples, then thumbs-down."""
    since = now - timedelta(seconds=lookback_s)
    claimed: list[str] = []
    async with engine.begin() as connection:
        claimed += await _take_over_stale(connection, replica, now, claim_timeout_s, limit)
        table = requests_table
        if len(claimed) < limit:
            sampled = (
                sa.select(
                    table.c.id,
                    table.c.started_at,
                    table.c.model,
                    table.c.adapter,
                    table.c.judge_sample.label("reason"),
                )
                .where(
                    table.c.judge_sample.is_not(None),
                    table.c.started_at >= since,
                    table.c.started_at <= now,
                    _unjudged(table.c.id),
                )
                .order_by(table.c.started_at)
                .limit(limit - len(claimed))
            )
            claimed += await _claim_from(connection, sampled, replica, now)
        if thumbs_down and len(claimed) < limit:
            rated = feedback_table
            disliked = (
                sa.select(
                    table.c.id,
                    table.c.started_at,
                    table.c.model,
                    table.c.adapter,
                    sa.literal(SampleReason.THUMBS_DOWN).label("reason"),
                )
                .where(
                    table.c.id.in_(
                        sa.select(rated.c.request_id).where(
                            ~rated.c.satisfied, rated.c.created_at >= since
                        )
                    ),
                    _unjudged(table.c.id),
                )
                .limit(limit - len(claimed))
            )
            claimed += await _claim_from(connection, disliked, replica, now)
    return claimed


@translating
async def claim_random(
    engine: AsyncEngine,
    *,
    replica: str,
    now: datetime,
    window: TimeWindow,
    limit: int,
    reason: str,
) -> list[str]:
    """Claim up to ``limit`` unjudged successful completions drawn at random from a window (of
    the window's model, when it names one)."""
    table = requests_table
    query = (
        sa.select(
            table.c.id,
            table.c.started_at,
            table.c.model,
            table.c.adapter,
            sa.literal(reason).label("reason"),
        )
        .where(
            within(table.c.started_at, window),
            table.c.path.in_(sorted(JUDGEABLE_PATHS)),
            table.c.status >= 200,
            table.c.status < 300,
            _unjudged(table.c.id),
            *([table.c.model == window.model] if window.model else []),
        )
        .order_by(sa.func.random())
        .limit(limit)
    )
    async with engine.begin() as connection:
        return await _claim_from(connection, query, replica, now)


async def _take_over_stale(
    connection: AsyncConnection, replica: str, now: datetime, timeout_s: float, limit: int
) -> list[str]:
    table = judgements_table
    stale = (
        sa.select(table.c.request_id)
        .where(table.c.status == CLAIMED, table.c.claimed_at < now - timedelta(seconds=timeout_s))
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        stale = stale.with_for_update(skip_locked=True)
    statement = (
        sa.update(table)
        .where(table.c.request_id.in_(stale.scalar_subquery()), table.c.status == CLAIMED)
        .values(claimed_by=replica, claimed_at=now)
        .returning(table.c.request_id)
    )
    return [row[0] for row in await connection.execute(statement)]


@translating
async def load_claimed(engine: AsyncEngine, request_ids: Sequence[str]) -> list[ClaimedRequest]:
    if not request_ids:
        return []
    table, judged = requests_table, judgements_table
    query = (
        sa.select(
            table.c.id,
            judged.c.sample_reason,
            table.c.model,
            table.c.adapter,
            table.c.schema_name,
            table.c.request_body,
            table.c.response_body,
        )
        .join(judged, judged.c.request_id == table.c.id)
        .where(table.c.id.in_(list(request_ids)))
        .order_by(table.c.started_at)
    )
    async with engine.connect() as connection:
        return [ClaimedRequest(*row) for row in await connection.execute(query)]


@translating
async def record_result(
    engine: AsyncEngine, request_id: str, replica: str, result: JudgementResult
) -> bool:
    """Store the verdict; False when the claim was taken over meanwhile (nothing written)."""
    values = {name: getattr(result, name) for name in JudgementResult.__dataclass_fields__}
    table = judgements_table
    statement = (
        sa.update(table)
        .where(
            table.c.request_id == request_id,
            table.c.claimed_by == replica,
            table.c.status == CLAIMED,
        )
        .values(**values)
    )
    async with engine.begin() as connection:
        return (await connection.execute(statement)).rowcount == 1


@translating
async def release(engine: AsyncEngine, request_ids: Sequence[str], replica: str) -> None:
    """Give claims back (the judge is down: let a later round try again)."""
    if not request_ids:
        return
    table = judgements_table
    async with engine.begin() as connection:
        await connection.execute(
            sa.delete(table).where(
                table.c.request_id.in_(list(request_ids)),
                table.c.claimed_by == replica,
                table.c.status == CLAIMED,
            )
        )


@translating
async def spent_since(engine: AsyncEngine, since: datetime) -> tuple[int, float]:
    """Judge calls made and dollars spent since ``since``, over every replica."""
    table = judgements_table
    query = sa.select(
        sa.func.coalesce(sa.func.sum(table.c.attempts), 0),
        sa.func.coalesce(sa.func.sum(table.c.cost_usd), 0.0),
    ).where(table.c.judged_at >= since)
    async with engine.connect() as connection:
        calls, cost = (await connection.execute(query)).one()
    return int(calls), float(cost)


@contextlib.asynccontextmanager
async def batch_turn(engine: AsyncEngine, due: datetime) -> AsyncIterator[bool]:
    """True for the one replica that should run the batch due at ``due``: it holds the lock, and
    no batch claim has been made since ``due`` (so a late replica does not run it again)."""
    async with session_lock(engine, LockKey.JUDGE_BATCH) as connection:
        if connection is None:
            yield False
            return
        table = judgements_table
        done = await connection.scalar(
            sa.select(sa.func.count()).where(
                table.c.sample_reason == SampleReason.BATCH, table.c.claimed_at >= due
            )
        )
        await connection.commit()
        yield not done
