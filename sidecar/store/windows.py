"""Windows in SQL: the filters every windowed query uses, and the window queries that alerts
and reports share (the newest drift run, the unbiased judge scores).

A :class:`~sidecar.records.TimeWindow` becomes ``since <= t < until`` on an indexed time column;
its optional model and adapter narrow it (reports, ``--model``). A scope that must match exactly,
a base model included (``adapter IS NULL``), uses :func:`same_model`: ``=`` would never match NULL.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from sidecar.records import UNBIASED_REASONS, DriftCheck, FeatureDrift, TimeWindow
from sidecar.store.tables import drift_checks_table, judgements_table

ScoreScope = tuple[
    str | None, str | None, str | None, str | None
]  # model, adapter, rubric, version


def within(column: sa.ColumnElement[Any], window: TimeWindow) -> sa.ColumnElement[bool]:
    """``since <= column < until``."""
    return sa.and_(column >= window.since, column < window.until)


def narrowed(
    table: sa.Table, window: TimeWindow, time_column: str = "started_at"
) -> list[sa.ColumnElement[bool]]:
    """The window on ``time_column``, plus the model and adapter asked for, when asked."""
    return [within(table.c[time_column], window), *_asked_for(table, window)]


def _asked_for(table: sa.Table, window: TimeWindow) -> list[sa.ColumnElement[bool]]:
    """The window's model and adapter, when it names them."""
    # Stored text never holds NUL (the writer stores U+FFFD instead): compare like with like.
    where = []
    if window.model:
        where.append(table.c.model == window.model.replace("\x00", "\ufffd"))
    if window.adapter:
        where.append(table.c.adapter == window.adapter.replace("\x00", "\ufffd"))
    return where


def same_model(
    table: sa.Table | sa.Subquery, model: str | None, adapter: str | None
) -> list[sa.ColumnElement[bool]]:
    """Rows of exactly this model and adapter, NULL matching NULL (a base model's adapter)."""
    return [
        table.c.model.is_not_distinct_from(model),
        table.c.adapter.is_not_distinct_from(adapter),
    ]


def unbiased_scores_query(window: TimeWindow) -> sa.Select[Any]:
    """Scored judgements of the unbiased sample (random, floor, batch, manual) of requests in
    the window: model, adapter, rubric, rubric version, score."""
    table = judgements_table
    return sa.select(
        table.c.model, table.c.adapter, table.c.rubric, table.c.rubric_version, table.c.score
    ).where(
        table.c.status == "scored",
        table.c.sample_reason.in_(sorted(UNBIASED_REASONS)),
        *narrowed(table, window, "request_started_at"),
    )


async def unbiased_scores(
    connection: AsyncConnection, window: TimeWindow
) -> dict[ScoreScope, list[float]]:
    """The window's unbiased judge scores, by model, adapter, rubric and rubric version."""
    found: dict[ScoreScope, list[float]] = defaultdict(list)
    for model, adapter, rubric, version, score in await connection.execute(
        unbiased_scores_query(window)
    ):
        found[(model, adapter, rubric, version)].append(score)
    return dict(found)


async def newest_drift_run(connection: AsyncConnection, window: TimeWindow) -> list[DriftCheck]:
    """The rows of the newest drift run checked in the window (one run covers every scope),
    narrowed to the window's model and adapter when it names them."""
    table = drift_checks_table
    newest = (
        sa.select(table.c.run_id)
        .where(within(table.c.checked_at, window))
        .order_by(table.c.checked_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = (
        sa.select(table)
        .where(table.c.run_id == newest, *_asked_for(table, window))
        .order_by(table.c.id)
    )
    return [_drift_check(row) for row in (await connection.execute(query)).mappings()]


def _drift_check(row: Any) -> DriftCheck:
    return DriftCheck(
        run_id=row["run_id"], checked_at=row["checked_at"], model=row["model"],
        adapter=row["adapter"], reference_kind=row["reference"],
        reference=TimeWindow(row["ref_since"], row["ref_until"]),
        current=TimeWindow(row["cur_since"], row["cur_until"]),
        result=FeatureDrift.from_json({
            "reference_summary": row["reference_summary"] or {},
            "current_summary": row["current_summary"] or {},
            "top_movers": row["top_movers"] or (),
            **{name: row[name] for name in ("feature", "kind", "statistic", "value", "threshold",
                                            "drifted", "n_ref", "n_cur", "psi", "reason")},
        }),
    )  # fmt: skip
