"""The drift job over real databases: windows, baselines, stored checks and the alert rule."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.alerts.evaluate import evaluate
from sidecar.alerts.readers import DEFAULT_RULES, READERS
from sidecar.drift.features import extract_features
from sidecar.drift.job import run_drift
from sidecar.metrics import SidecarMetrics
from sidecar.records import LoggedRequest, TimeWindow
from sidecar.settings import DriftSettings
from sidecar.store.baselines import set_drift_baselines
from sidecar.store.locks import LockKey
from sidecar.store.tables import drift_checks_table
from sidecar.store.writes import insert_requests
from sidecar.testing.factories import logged_request as make_row
from sidecar.testing.topics import SUPPORT, TRAVEL, question

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
RULE = next(rule for rule in DEFAULT_RULES if rule.spec.name == "drift")
SETTINGS = DriftSettings(window_s=86400, interval_s=3600)


def traffic(
    seed: int, n: int, start: datetime, *, words: list[str] = SUPPORT,
    system: str = "You are a support agent.", length: tuple[int, int] = (5, 15),
) -> list[LoggedRequest]:  # fmt: skip
    rng = random.Random(seed)
    rows = []
    for index in range(n):
        text = question(rng, words, length)
        request = {"model": "support", "messages": [{"role": "system", "content": system},
                                                    {"role": "user", "content": text}]}  # fmt: skip
        row = make_row(
            started_at=start + timedelta(seconds=index * 60), request_body=request,
            prompt_tokens=10 + len(text) // 4, latency_ms=rng.gauss(200, 20),
            model="support", adapter="support", schema_verdict=None, schema_name=None,
        )  # fmt: skip
        rows.append(dataclasses.replace(row, features=extract_features(row).as_json()))
    return rows


async def checks(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with engine.connect() as connection:
        found = (await connection.execute(sa.select(drift_checks_table))).mappings().all()
    return {row["feature"]: dict(row) for row in found}


def metrics() -> SidecarMetrics:
    return SidecarMetrics(CollectorRegistry())


async def alert(engine: AsyncEngine, now: datetime) -> list[str]:
    async with engine.connect() as connection:
        readings = await READERS["drift"](connection, RULE, now)
    _, transitions = evaluate({RULE.spec.name: RULE.spec}, readings, {}, now)
    return [transition.event for transition in transitions]


async def test_steady_traffic_shows_no_drift_and_no_alert(engine: AsyncEngine) -> None:
    await insert_requests(engine, traffic(1, 300, NOW - 2 * DAY) + traffic(2, 300, NOW - DAY))
    found = await run_drift(engine, SETTINGS, metrics(), NOW)
    assert found is not None
    (check,) = found
    assert (check.reference_kind, check.model, check.adapter) == ("rolling", "support", "support")
    stored = await checks(engine)
    assert stored["prompt_chars"]["n_ref"] == 300
    assert stored["prompt_chars"]["n_cur"] == 300
    assert stored["prompt_chars"]["statistic"] == "ks"
    assert sum(bool(row["drifted"]) for row in stored.values()) <= 2
    assert await alert(engine, NOW + timedelta(minutes=1)) == []


async def test_a_new_template_and_topic_are_named_and_alerted(engine: AsyncEngine) -> None:
    before = traffic(1, 300, NOW - 2 * DAY)
    after = traffic(2, 300, NOW - DAY, words=TRAVEL, length=(15, 30),
                    system="You are a travel assistant. Answer in one line.")  # fmt: skip
    await insert_requests(engine, before + after)
    gauge = metrics()
    await run_drift(engine, SETTINGS, gauge, NOW)
    stored = await checks(engine)
    drifted = {name for name, row in stored.items() if row["drifted"]}
    assert {"system_prompt_hash", "user_words", "prompt_chars", "prompt_tokens"} <= drifted
    assert "latency_ms" not in drifted
    movers = [mover[0] for mover in stored["user_words"]["top_movers"]]
    assert set(movers[:5]) <= set(TRAVEL + SUPPORT)
    assert any(word in TRAVEL for word in movers[:3])
    assert stored["system_prompt_hash"]["statistic"] == "chi2"
    assert gauge.drift_detected.labels("user_words", "support")._value.get() == 1
    assert await alert(engine, NOW + timedelta(minutes=1)) == ["firing"]


async def test_too_little_traffic_gives_no_verdict(engine: AsyncEngine) -> None:
    await insert_requests(engine, traffic(1, 300, NOW - 2 * DAY) + traffic(2, 8, NOW - DAY))
    await run_drift(engine, SETTINGS, metrics(), NOW)
    stored = await checks(engine)
    assert all(row["drifted"] is None for row in stored.values())
    assert "insufficient data" in stored["prompt_chars"]["reason"]
    assert await alert(engine, NOW + timedelta(minutes=1)) == []


async def test_a_pinned_baseline_is_the_reference_and_is_not_compared_with_itself(
    engine: AsyncEngine,
) -> None:
    pinned = traffic(1, 200, NOW - 10 * DAY)
    recent = traffic(2, 200, NOW - timedelta(hours=2), words=TRAVEL)
    await insert_requests(engine, pinned + recent)
    # A baseline pinned over the last day too: the current window starts where it ends.
    pinned_window = TimeWindow(NOW - 11 * DAY, NOW - timedelta(hours=3))
    await set_drift_baselines(engine, window=pinned_window, now=NOW)
    (check,) = await run_drift(engine, SETTINGS, metrics(), NOW) or []
    assert check.reference_kind == "baseline"
    assert check.reference.since == NOW - 11 * DAY
    assert check.current.since == NOW - timedelta(hours=3)
    stored = await checks(engine)
    assert stored["user_words"]["n_ref"] == 200
    assert stored["user_words"]["drifted"] is True


async def test_a_baseline_whose_rows_are_gone_says_so(engine: AsyncEngine) -> None:
    await insert_requests(engine, traffic(2, 200, NOW - DAY))
    await set_drift_baselines(engine, window=TimeWindow(NOW - 3 * DAY, NOW - DAY), now=NOW)
    await run_drift(engine, SETTINGS, metrics(), NOW)
    stored = await checks(engine)
    assert stored["prompt_chars"]["n_ref"] == 0
    assert stored["prompt_chars"]["drifted"] is None
    assert stored["prompt_chars"]["reason"] == "reference window is empty"


async def test_a_recent_run_is_not_repeated_unless_forced(engine: AsyncEngine) -> None:
    await insert_requests(engine, traffic(1, 50, NOW - 2 * DAY) + traffic(2, 50, NOW - DAY))
    assert await run_drift(engine, SETTINGS, metrics(), NOW) is not None
    assert await run_drift(engine, SETTINGS, metrics(), NOW + timedelta(minutes=5)) is None
    assert await run_drift(engine, SETTINGS, metrics(), NOW + timedelta(minutes=5), force=True)
    assert await run_drift(engine, SETTINGS, metrics(), NOW + timedelta(hours=2)) is not None


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_replicas_at_once_run_one_drift_check(engine: AsyncEngine) -> None:
    await insert_requests(engine, traffic(1, 100, NOW - 2 * DAY) + traffic(2, 100, NOW - DAY))
    runs = await asyncio.gather(*(run_drift(engine, SETTINGS, metrics(), NOW) for _ in range(3)))
    assert sum(run is not None for run in runs) == 1
    async with engine.connect() as connection:
        count = await connection.scalar(
            sa.select(sa.func.count(sa.distinct(drift_checks_table.c.run_id)))
        )
    assert count == 1


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_forced_run_waits_for_a_replica_holding_the_lock_instead_of_failing(
    engine: AsyncEngine,
) -> None:
    """Every replica's loop takes the drift lock for a moment every few seconds to see whether a
    run is due: `sidecar drift run` (forced) waits for it, a replica's own run does not."""
    await insert_requests(engine, traffic(1, 50, NOW - 2 * DAY) + traffic(2, 50, NOW - DAY))
    async with engine.connect() as holder:
        assert await holder.scalar(sa.select(sa.func.pg_try_advisory_lock(int(LockKey.DRIFT))))
        await holder.commit()
        assert await run_drift(engine, SETTINGS, metrics(), NOW) is None
        forced = asyncio.create_task(run_drift(engine, SETTINGS, metrics(), NOW, force=True))
        await asyncio.sleep(0.3)  # the forced run is waiting, not given up
        assert not forced.done()
        await holder.scalar(sa.select(sa.func.pg_advisory_unlock(int(LockKey.DRIFT))))
        await holder.commit()
    assert await asyncio.wait_for(forced, 30) is not None
