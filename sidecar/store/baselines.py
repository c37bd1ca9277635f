"""Baseline rows: pin one (replacing the active one of its kind and scope), read the active
ones, and the judge scores a quality baseline is computed from.

The store only reads and writes rows; what a quality baseline's numbers are is the judge's
business (:mod:`sidecar.judge.baselines`). A drift baseline is just a pinned window.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sidecar.records import Baseline, ScoreSummary, TimeWindow
from sidecar.store.errors import translating
from sidecar.store.tables import baselines_table, judgements_table, requests_table
from sidecar.store.windows import ScoreScope, narrowed, same_model, unbiased_scores_query

QUALITY, DRIFT = "quality", "drift"


def _baseline(row: Any) -> Baseline:
    summary = None
    if row["mean"] is not None:
        summary = ScoreSummary(row["n"], row["mean"], row["std"] or 0.0, row["ci_low"],
                               row["ci_high"], row["confidence"] or 0.95)  # fmt: skip
    return Baseline(
        row["id"], row["kind"], row["model"], row["adapter"], row["rubric"],
        row["rubric_version"], row["since"], row["until"], row["n"], summary, row["source"],
        row["created_at"],
    )  # fmt: skip


async def active_baselines(connection: AsyncConnection, kind: str) -> list[Baseline]:
    table = baselines_table
    query = (
        sa.select(table)
        .where(table.c.kind == kind, table.c.active)
        .order_by(table.c.model, table.c.adapter)
    )
    return [_baseline(row) for row in (await connection.execute(query)).mappings()]


async def _replace(connection: AsyncConnection, values: dict[str, Any]) -> None:
    """Insert ``values`` as the active baseline of its kind and scope; the old one stays, idle."""
    table = baselines_table
    await connection.execute(
        sa.update(table)
        .where(table.c.kind == values["kind"], table.c.active,
               *same_model(table, values["model"], values["adapter"]))
        .values(active=False)
    )  # fmt: skip
    await connection.execute(sa.insert(table).values(**values, active=True))


async def pin_quality_baseline(
    connection: AsyncConnection, scope: ScoreScope, summary: ScoreSummary, window: TimeWindow, *,
    source: str, now: datetime,
) -> None:  # fmt: skip
    """Make ``summary`` (of ``scope``'s scores in ``window``) its model/adapter's baseline."""
    model, adapter, rubric, version = scope
    await _replace(connection, {
        "kind": QUALITY, "model": model, "adapter": adapter, "rubric": rubric,
        "rubric_version": version, "since": window.since, "until": window.until, "n": summary.n,
        "mean": summary.mean, "std": summary.std, "ci_low": summary.ci_low,
        "ci_high": summary.ci_high, "confidence": summary.confidence, "source": source,
        "created_at": now,
    })  # fmt: skip


async def first_unbiased_scores(
    connection: AsyncConnection, scope: ScoreScope, window: TimeWindow, limit: int
) -> list[tuple[datetime, float]]:
    """The first ``limit`` unbiased scores of ``scope`` (exactly its model, adapter and rubric
    version) in the window, oldest first, with their request's start time."""
    model, adapter, _, version = scope
    table = judgements_table
    query = (
        unbiased_scores_query(window)
        .add_columns(table.c.request_started_at)
        .where(table.c.rubric_version == version, *same_model(table, model, adapter))
        .order_by(table.c.request_started_at)
        .limit(limit)
    )
    return [(row.request_started_at, row.score) for row in await connection.execute(query)]


@translating
async def set_drift_baselines(
    engine: AsyncEngine, *, window: TimeWindow, now: datetime
) -> list[Baseline]:
    """Pin a reference window for drift checks, one per model/adapter that had traffic in it
    (only the window's model, when it names one)."""
    table = requests_table
    query = (
        sa.select(table.c.model, table.c.adapter, sa.func.count())
        .where(*narrowed(table, window), table.c.status >= 200, table.c.status < 300,
               table.c.model.is_not(None))
        .group_by(table.c.model, table.c.adapter)
    )  # fmt: skip
    async with engine.begin() as connection:
        for found_model, adapter, n in (await connection.execute(query)).all():
            await _replace(connection, {
                "kind": DRIFT, "model": found_model, "adapter": adapter, "since": window.since,
                "until": window.until, "n": n, "source": "manual", "created_at": now,
            })  # fmt: skip
        return await active_baselines(connection, DRIFT)
