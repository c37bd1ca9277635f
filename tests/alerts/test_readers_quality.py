"""The quality_drop rule: judge scores in the window against the active quality baseline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.alerts.evaluate import evaluate
from sidecar.alerts.readers import DEFAULT_RULES, READERS
from sidecar.judge.baselines import set_quality_baselines
from sidecar.records import TimeWindow
from sidecar.store.tables import judgements_table
from sidecar.store.writes import insert_requests
from sidecar.testing.factories import logged_request as make_row

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
RULE = next(rule for rule in DEFAULT_RULES if rule.spec.name == "quality_drop")


async def judged(
    engine: AsyncEngine, scores: list[float], start: datetime, *, adapter: str = "support-lora",
    reason: str = "random",
) -> None:  # fmt: skip
    rows = [make_row(started_at=start + timedelta(seconds=i), model=adapter, adapter=adapter)
            for i in range(len(scores))]  # fmt: skip
    await insert_requests(engine, rows)
    values = [{
        "request_id": row.id, "request_started_at": row.started_at, "model": adapter,
        "adapter": adapter, "sample_reason": reason, "status": "scored", "claimed_by": "t",
        "claimed_at": NOW, "judged_at": NOW, "rubric": "default", "rubric_version": "v1",
        "score": score, "attempts": 1,
    } for row, score in zip(rows, scores, strict=True)]  # fmt: skip
    async with engine.begin() as connection:
        await connection.execute(sa.insert(judgements_table), values)


def scores(seed: int, mean: float, n: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(np.clip(rng.normal(mean, 0.6, n), 1, 5))


async def test_a_significant_drop_per_adapter_fires_and_steady_quality_does_not(
    engine: AsyncEngine,
) -> None:
    week_ago = NOW - timedelta(days=7)
    await judged(engine, scores(1, 4.0, 200), week_ago, adapter="support-lora")
    await judged(engine, scores(2, 4.0, 200), week_ago, adapter="billing-lora")
    baselines = await set_quality_baselines(
        engine,
        window=TimeWindow(week_ago, week_ago + timedelta(hours=1)),
        now=NOW,
        confidence=0.95,
    )
    assert len(baselines) == 2
    today = NOW - timedelta(hours=2)
    await judged(engine, scores(3, 3.4, 100), today, adapter="support-lora")  # 15% lower
    await judged(engine, scores(4, 4.0, 100), today, adapter="billing-lora")
    await judged(engine, [1.0] * 50, today, adapter="billing-lora", reason="thumbs_down")
    async with engine.connect() as connection:
        readings = await READERS["quality_drop"](connection, RULE, NOW)
    values = {dict(r.scope)["adapter"]: (r.value, r.samples) for r in readings}
    assert (values["support-lora"][0] or 0.0) > 10.0
    assert values["support-lora"][1] == 100
    assert values["billing-lora"] == (0.0, 100)  # hard cases never count
    _, transitions = evaluate({RULE.spec.name: RULE.spec}, readings, {}, NOW)
    assert [(t.event, dict(t.scope)["adapter"]) for t in transitions] == [
        ("firing", "support-lora")
    ]


async def test_too_few_scores_cannot_fire(engine: AsyncEngine) -> None:
    week_ago = NOW - timedelta(days=7)
    await judged(engine, scores(1, 4.0, 200), week_ago)
    await set_quality_baselines(
        engine, window=TimeWindow(week_ago, NOW - timedelta(days=1)), now=NOW, confidence=0.95
    )
    await judged(engine, [1.0] * 10, NOW - timedelta(hours=1))
    async with engine.connect() as connection:
        readings = await READERS["quality_drop"](connection, RULE, NOW)
    _, transitions = evaluate({RULE.spec.name: RULE.spec}, readings, {}, NOW)
    assert readings[0].samples == 10
    assert transitions == []


async def test_no_baseline_means_no_reading(engine: AsyncEngine) -> None:
    await judged(engine, [1.0] * 50, NOW - timedelta(hours=1))
    async with engine.connect() as connection:
        assert await READERS["quality_drop"](connection, RULE, NOW) == []
