"""Judge scores and feedback ratings as drift features: a change in shape (more 1s and 5s)
shows although the mean holds; without any scores the features are left out."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.drift.features import extract_features
from sidecar.drift.job import run_drift
from sidecar.metrics import SidecarMetrics
from sidecar.records import LoggedRequest
from sidecar.settings import DriftSettings
from sidecar.store.tables import drift_checks_table, feedback_table, judgements_table
from sidecar.store.writes import insert_requests
from sidecar.testing.factories import logged_request as make_row

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SETTINGS = DriftSettings(window_s=86400, interval_s=3600)


def requests(n: int, start: datetime) -> list[LoggedRequest]:
    rows = [make_row(started_at=start + timedelta(seconds=60 * i), model="support",
                     adapter=None, schema_verdict=None, schema_name=None) for i in range(n)]  # fmt: skip
    return [dataclasses.replace(row, features=extract_features(row).as_json()) for row in rows]


async def scored(engine: AsyncEngine, rows: list[LoggedRequest], judge: list[float],
                 ratings: list[int]) -> None:  # fmt: skip
    await insert_requests(engine, rows)
    judgements = [{
        "request_id": row.id, "request_started_at": row.started_at, "model": "support",
        "adapter": None, "sample_reason": "random", "status": "scored", "claimed_by": "t",
        "claimed_at": NOW, "judged_at": NOW, "rubric": "default", "rubric_version": "v1",
        "score": 1 + 4 * score, "score_normalized": score, "attempts": 1,
    } for row, score in zip(rows, judge, strict=True)]  # fmt: skip
    feedback = [{
        "request_id": row.id, "user_id": "u", "rating": str(rating), "score": rating,
        "satisfied": rating >= 4, "escalated": False, "comment": None, "created_at": NOW,
        "updated_at": NOW,
    } for row, rating in zip(rows, ratings, strict=True)]  # fmt: skip
    async with engine.begin() as connection:
        await connection.execute(sa.insert(judgements_table), judgements)
        await connection.execute(sa.insert(feedback_table), feedback)


async def checks(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with engine.connect() as connection:
        found = (await connection.execute(sa.select(drift_checks_table))).mappings().all()
    return {row["feature"]: dict(row) for row in found}


async def test_polarised_scores_with_the_same_mean_are_drift(engine: AsyncEngine) -> None:
    n = 80
    # Reference: middling. Current: the same means, at the extremes (more 1s and 5s).
    await scored(engine, requests(n, NOW - 2 * DAY), [0.5] * n, [3] * 40 + [4] * 40)
    await scored(engine, requests(n, NOW - DAY), [0.0] * 40 + [1.0] * 40, [1] * 30 + [5] * 50)
    await run_drift(engine, SETTINGS, SidecarMetrics(CollectorRegistry()), NOW)
    stored = await checks(engine)
    judge, feedback = stored["judge_score"], stored["feedback_score"]
    assert judge["reference_summary"]["mean"] == judge["current_summary"]["mean"] == 0.5
    assert feedback["reference_summary"]["mean"] == feedback["current_summary"]["mean"] == 3.5
    assert (judge["drifted"], feedback["drifted"]) == (True, True)
    assert (feedback["n_ref"], feedback["n_cur"]) == (n, n)
    assert feedback["statistic"] == "chi2"  # five ratings at most: tested as categories


async def test_steady_scores_are_not_drift(engine: AsyncEngine) -> None:
    ratings = [1, 3, 4, 5, 5] * 12
    judge = [0.25, 0.5, 0.75, 1.0, 1.0] * 12
    await scored(engine, requests(60, NOW - 2 * DAY), judge, ratings)
    await scored(engine, requests(60, NOW - DAY), judge[::-1], ratings[::-1])
    await run_drift(engine, SETTINGS, SidecarMetrics(CollectorRegistry()), NOW)
    stored = await checks(engine)
    assert (stored["judge_score"]["drifted"], stored["feedback_score"]["drifted"]) == (False,
                                                                                        False)  # fmt: skip


async def test_without_judge_or_feedback_the_score_features_are_left_out(
    engine: AsyncEngine,
) -> None:
    await insert_requests(engine, requests(40, NOW - 2 * DAY) + requests(40, NOW - DAY))
    await run_drift(engine, SETTINGS, SidecarMetrics(CollectorRegistry()), NOW)
    stored = await checks(engine)
    assert "prompt_chars" in stored
    assert not {"judge_score", "feedback_score"} & set(stored)
