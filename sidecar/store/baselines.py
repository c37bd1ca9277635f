"""Baselines in the store: set from a window (or automatically), read the active ones, and the
current window's scores to compare with them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sidecar.judge.quality import summarize
from sidecar.records import UNBIASED_REASONS, ScoreSummary
from sidecar.store.errors import translating
from sidecar.store.tables import baselines_table, judgements_table, requests_table

QUALITY, DRIFT = "quality", "drift"
ScoreScope = tuple[
    str | None, str | None, str | None, str | None
]  # model, adapter, rubric, version


@dataclass(frozen=True, slots=True)
class Baseline:
    id: int
    kind: str
    model: str | None
    adapter: str | None
    rubric: str | None
    rubric_version: str | None
    since: datetime
    until: datetime
    n: int
    summary: ScoreSummary | None  # quality only
    source: str
    created_at: datetime


def _baseline(row: Any) -> Baseline:
    summary = None
    if row["mean"] is not None:
        summary = ScoreSummary(
            row["n"],
            row["mean"],
            row["std"] or 0.0,
            row["ci_low"],
            row["ci_high"],
            row["confidence"] or 0.95,
        )
    return Baseline(
        row["id"],
        row["kind"],
        row["model"],
        row["adapter"],
        row["rubric"],
        row["rubric_version"],
        row["since"],
        row["until"],
        row["n"],
        summary,
        row["source"],
        row["created_at"],
    )


def _unbiased_scores(since: datetime, until: datetime) -> sa.Select[Any]:
    table = judgements_table
    return sa.select(
        table.c.model, table.c.adapter, table.c.rubric, table.c.rubric_version, table.c.score
    ).where(
        table.c.status == "scored",
        table.c.sample_reason.in_(sorted(UNBIASED_REASONS)),
        table.c.request_started_at >= since,
        table.c.request_started_at < until,
    )


async def scores_by_scope(
    connection: AsyncConnection, since: datetime, until: datetime
) -> dict[ScoreScope, list[float]]:
    """Unbiased judge scores in ``[since, until)``, by model, adapter and rubric version."""
    found: dict[ScoreScope, list[float]] = defaultdict(list)
    for model, adapter, rubric, version, score in await connection.execute(
        _unbiased_scores(since, until)
    ):
        found[(model, adapter, rubric, version)].append(score)
    return dict(found)


async def active_baselines(connection: AsyncConnection, kind: str) -> list[Baseline]:
    table = baselines_table
    query = (
        sa.select(table)
        .where(table.c.kind == kind, table.c.active)
        .order_by(table.c.model, table.c.adapter)
    )
    return [_baseline(row) for row in (await connection.execute(query)).mappings()]


async def _replace(connection: AsyncConnection, values: dict[str, Any]) -> None:
    table = baselines_table
    model, adapter = values["model"], values["adapter"]
    await connection.execute(
        sa.update(table)
        .where(
            table.c.kind == values["kind"],
            table.c.active,
            table.c.model.is_not_distinct_from(model),
            table.c.adapter.is_not_distinct_from(adapter),
        )
        .values(active=False)
    )
    await connection.execute(sa.insert(table).values(**values, active=True))


def _quality_values(
    scope: ScoreScope, summary: ScoreSummary, since: datetime, until: datetime, *, source: str,
    now: datetime,
) -> dict[str, Any]:  # fmt: skip
    model, adapter, rubric, version = scope
    return {
        "kind": QUALITY, "model": model, "adapter": adapter, "rubric": rubric,
        "rubric_version": version, "since": since, "until": until, "n": summary.n,
        "mean": summary.mean, "std": summary.std, "ci_low": summary.ci_low,
        "ci_high": summary.ci_high, "confidence": summary.confidence, "source": source,
        "created_at": now,
    }  # fmt: skip


@translating
async def set_quality_baselines(
    engine: AsyncEngine,
    *,
    since: datetime,
    until: datetime,
    now: datetime,
    confidence: float,
    model: str | None = None,
    min_samples: int = 2,
    source: str = "manual",
) -> list[Baseline]:
    """One baseline per model/adapter from the unbiased scores of a window (latest rubric)."""
    async with engine.begin() as connection:
        scopes = await scores_by_scope(connection, since, until)
        chosen: dict[tuple[str | None, str | None], ScoreScope] = {}
        for scope, scores in sorted(scopes.items(), key=lambda item: len(item[1])):
            if (model is None or scope[0] == model) and len(scores) >= min_samples:
                chosen[(scope[0], scope[1])] = scope  # the rubric version with the most scores
        for scope in chosen.values():
            summary = summarize(scopes[scope], confidence)
            await _replace(
                connection,
                _quality_values(scope, summary, since, until, source=source, now=now),
            )
        return await active_baselines(connection, QUALITY)


@translating
async def set_drift_baselines(
    engine: AsyncEngine, *, since: datetime, until: datetime, now: datetime,
    model: str | None = None,
) -> list[Baseline]:  # fmt: skip
    """Pin a reference window for drift checks, one per model/adapter that had traffic in it."""
    table = requests_table
    query = (
        sa.select(table.c.model, table.c.adapter, sa.func.count())
        .where(table.c.started_at >= since, table.c.started_at < until,
               table.c.status >= 200, table.c.status < 300, table.c.model.is_not(None))
        .group_by(table.c.model, table.c.adapter)
    )  # fmt: skip
    if model is not None:
        query = query.where(table.c.model == model)
    async with engine.begin() as connection:
        for found_model, adapter, n in (await connection.execute(query)).all():
            await _replace(connection, {
                "kind": DRIFT, "model": found_model, "adapter": adapter, "since": since,
                "until": until, "n": n, "source": "manual", "created_at": now,
            })  # fmt: skip
        return await active_baselines(connection, DRIFT)


@translating
async def auto_quality_baselines(
    engine: AsyncEngine, *, now: datetime, samples: int, lookback_s: float, confidence: float
) -> list[Baseline]:
    """For each model/adapter without a quality baseline: once ``samples`` unbiased scores exist,
    the first ``samples`` of them become its baseline (source ``auto``)."""
    since = now - timedelta(seconds=lookback_s)
    created = []
    async with engine.begin() as connection:
        have = {(b.model, b.adapter) for b in await active_baselines(connection, QUALITY)}
        scopes = await scores_by_scope(connection, since, now)
        for (model, adapter, rubric, version), scores in scopes.items():
            if (model, adapter) in have or len(scores) < samples:
                continue
            table = judgements_table
            first = (
                _unbiased_scores(since, now)
                .add_columns(table.c.request_started_at)
                .where(
                    table.c.rubric_version == version,
                    table.c.model.is_not_distinct_from(model),
                    table.c.adapter.is_not_distinct_from(adapter),
                )
                .order_by(table.c.request_started_at)
                .limit(samples)
            )
            rows = (await connection.execute(first)).all()
            summary = summarize([row.score for row in rows], confidence)
            await _replace(
                connection,
                _quality_values(
                    (model, adapter, rubric, version),
                    summary,
                    rows[0].request_started_at,
                    rows[-1].request_started_at + timedelta(microseconds=1),
                    source="auto",
                    now=now,
                ),
            )
            have.add((model, adapter))
            created.append((model, adapter))
        if not created:
            return []
        return [
            b
            for b in await active_baselines(connection, QUALITY)
            if (b.model, b.adapter) in created
        ]
