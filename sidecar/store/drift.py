"""Drift in the store: the scopes with traffic, a window's features (bounded), the checks."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sidecar.drift.stats import FeatureDrift
from sidecar.store.locks import session_lock
from sidecar.store.models import requests_table
from sidecar.store.scoring_models import drift_checks_table

DRIFT_LOCK_KEY = 0x51DEC4A3  # "one replica runs the drift check"


@dataclass(frozen=True, slots=True)
class DriftWindow:
    kind: str  # baseline or rolling
    since: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class ScopeCheck:
    """One model/adapter's comparison in a run."""

    model: str | None
    adapter: str | None
    reference: DriftWindow
    current: DriftWindow
    results: tuple[FeatureDrift, ...]


def _scope(model: str | None, adapter: str | None) -> list[sa.ColumnElement[bool]]:
    table = requests_table
    return [
        table.c.model.is_not_distinct_from(model),
        table.c.adapter.is_not_distinct_from(adapter),
    ]


def _answered(since: datetime, until: datetime) -> list[sa.ColumnElement[bool]]:
    table = requests_table
    return [table.c.started_at >= since, table.c.started_at < until,
            table.c.status >= 200, table.c.status < 300, table.c.features.is_not(None)]  # fmt: skip


async def scopes_with_traffic(
    connection: AsyncConnection, since: datetime, until: datetime
) -> list[tuple[str | None, str | None]]:
    table = requests_table
    query = (
        sa.select(table.c.model, table.c.adapter)
        .where(*_answered(since, until), table.c.model.is_not(None))
        .group_by(table.c.model, table.c.adapter)
        .order_by(table.c.model, table.c.adapter)
    )
    return [(row[0], row[1]) for row in await connection.execute(query)]


async def window_features(
    connection: AsyncConnection, model: str | None, adapter: str | None, window: DriftWindow,
    limit: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """The stored features of a scope's answered requests in a window, newest first, at most
    ``limit`` (the query reads the window through the started_at index, never the table)."""
    table = requests_table
    query = (
        sa.select(table.c.features)
        .where(*_answered(window.since, window.until), *_scope(model, adapter))
        .order_by(table.c.started_at.desc())
        .limit(limit)
    )
    return [row[0] for row in await connection.execute(query) if isinstance(row[0], dict)]


async def save_checks(
    engine: AsyncEngine, run_id: str, checked_at: datetime, checks: Sequence[ScopeCheck]
) -> None:
    rows = [
        {
            "run_id": run_id, "checked_at": checked_at, "model": check.model,
            "adapter": check.adapter, "feature": result.feature, "kind": result.kind,
            "statistic": result.statistic, "value": result.value, "threshold": result.threshold,
            "drifted": result.drifted, "psi": result.psi, "n_ref": result.n_ref,
            "n_cur": result.n_cur, "reference": check.reference.kind,
            "ref_since": check.reference.since, "ref_until": check.reference.until,
            "cur_since": check.current.since, "cur_until": check.current.until,
            "reason": result.reason, "reference_summary": result.reference_summary,
            "current_summary": result.current_summary,
            "top_movers": [list(mover) for mover in result.top_movers],
        }
        for check in checks
        for result in check.results
    ]  # fmt: skip
    if rows:
        async with engine.begin() as connection:
            await connection.execute(sa.insert(drift_checks_table), rows)


async def last_run_at(connection: AsyncConnection) -> datetime | None:
    found: datetime | None = await connection.scalar(
        sa.select(sa.func.max(drift_checks_table.c.checked_at))
    )
    return found


async def latest_checks(
    connection: AsyncConnection, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """The rows of the newest run in ``[since, until)`` (one run covers every scope)."""
    table = drift_checks_table
    newest = (
        sa.select(table.c.run_id)
        .where(table.c.checked_at >= since, table.c.checked_at < until)
        .order_by(table.c.checked_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = sa.select(table).where(table.c.run_id == newest).order_by(table.c.id)
    return [dict(row) for row in (await connection.execute(query)).mappings()]


def drift_turn(
    engine: AsyncEngine,
) -> contextlib.AbstractAsyncContextManager[AsyncConnection | None]:
    """A connection holding the drift lock (Postgres), or None when another replica holds it."""
    return session_lock(engine, DRIFT_LOCK_KEY)
