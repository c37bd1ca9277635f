"""Rule readers over a fixed data set, on SQLite and Postgres, then through the evaluator."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.alerts.evaluate import RuleSpec, evaluate
from sidecar.alerts.readers import (
    DEFAULT_RULES,
    MOVED_CHARS,
    READERS,
    RuleDefinition,
    drift_detail,
)
from sidecar.records import FeatureDrift, Feedback
from sidecar.store.feedback import upsert_feedback
from sidecar.store.writes import insert_requests
from tests.reports.test_base import row

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def at(record, seconds_ago: float):  # type: ignore[no-untyped-def]
    return dataclasses.replace(record, started_at=NOW - timedelta(seconds=seconds_ago))


async def load(engine: AsyncEngine) -> None:
    slow = [at(row(i, latency=900.0 if i % 2 else 100.0, verdict="valid" if i % 4 else "invalid"), 60)
            for i in range(1, 61)]  # support: half at 900 ms, 75% valid  # fmt: skip
    fast = [at(row(100 + i, model="tiny", adapter=None, latency=50.0,
                   status=502 if i < 3 else 200, error_kind="upstream_error" if i < 3 else None), 60)
            for i in range(30)]  # fmt: skip
    old = [at(row(500 + i, latency=5000.0), 3600) for i in range(10)]  # outside a 5-minute window
    await insert_requests(engine, [*slow, *fast, *old])
    for i in range(1, 11):
        await upsert_feedback(engine, Feedback(f"{i:032x}", "u", "up" if i <= 7 else "down",
                                               5 if i <= 7 else 1, i <= 7, False, None,
                                               NOW - timedelta(minutes=5), NOW - timedelta(minutes=5)))  # fmt: skip


async def read(
    engine: AsyncEngine, definition: RuleDefinition
) -> dict[tuple[tuple[str, str], ...], tuple[float, int]]:
    async with engine.connect() as connection:
        readings = await READERS[definition.kind](connection, definition, NOW)
    return {r.scope: (round(r.value or 0.0, 2), r.samples) for r in readings}


async def test_readers_compute_windowed_values_per_scope(engine: AsyncEngine) -> None:
    await load(engine)
    p95, compliance, errors, satisfaction, _quality, _drift = DEFAULT_RULES
    assert await read(engine, p95) == {
        (("model", "support"),): (900.0, 60),
        (("model", "tiny"),): (50.0, 27),
    }
    assert await read(engine, compliance) == {
        (("model", "support"), ("schema", "support_triage")): (75.0, 60)
    }
    assert await read(engine, errors) == {
        (("model", "support"),): (0.0, 60),
        (("model", "tiny"),): (10.0, 30),
    }
    assert await read(engine, satisfaction) == {(("model", "support"),): (70.0, 10)}
    throughput = RuleDefinition(RuleSpec("throughput", 1.0, "below"), "throughput", window_s=300)
    assert await read(engine, throughput) == {
        (("model", "support"),): (0.2, 60),
        (("model", "tiny"),): (0.1, 30),
    }


async def test_one_alert_per_breaching_scope(engine: AsyncEngine) -> None:
    await load(engine)
    rule = dataclasses.replace(
        DEFAULT_RULES[0], spec=dataclasses.replace(DEFAULT_RULES[0].spec, for_s=0, min_samples=20)
    )
    async with engine.connect() as connection:
        readings = await READERS["latency"](connection, rule, NOW)
    _, transitions = evaluate({rule.spec.name: rule.spec}, readings, {}, NOW)
    assert [(t.scope, t.event, t.value) for t in transitions] == [
        ((("model", "support"),), "firing", 900.0)
    ]


async def test_no_traffic_at_all_reads_as_zero_throughput(engine: AsyncEngine) -> None:
    plan = RuleDefinition(RuleSpec("throughput_below_plan", 5.0, "below", min_samples=0), "throughput",
                          window_s=300, group_by=())  # fmt: skip
    assert await read(engine, plan) == {(): (0.0, 0)}
    async with engine.connect() as connection:
        readings = await READERS["throughput"](connection, plan, NOW)
    _, transitions = evaluate({plan.spec.name: plan.spec}, readings, {}, NOW)
    assert [t.event for t in transitions] == ["firing"]


async def test_checks_that_did_not_finish_are_left_out_of_the_compliance_rate(
    engine: AsyncEngine,
) -> None:
    """``check_timeout`` says nothing about the model: 10 valid + 30 unfinished is 100% valid."""
    rows = [at(row(i, verdict="valid" if i <= 10 else "check_timeout"), 60) for i in range(1, 41)]
    await insert_requests(engine, rows)
    compliance = DEFAULT_RULES[1]
    assert await read(engine, compliance) == {
        (("model", "support"), ("schema", "support_triage")): (100.0, 10)
    }


def test_the_drift_detail_names_features_and_quotes_moved_texts_briefly() -> None:
    long_prompt = "where is my   flight " + "x" * 300
    drifted = [
        FeatureDrift("user_words", "text", "chi2", 0.0012, 0.05, True, 100, 100,
                     top_movers=(("flight", 0.0, 0.1),)),
        FeatureDrift("prompt_embedding", "embedding", "mmd", 0.005, 0.05, True, 100, 100,
                     top_movers=((long_prompt, 0.3, 0.5), ("book a hotel", 0.2, 0.4))),
        FeatureDrift("output_embedding", "embedding", "mmd", None, 0.05, True, 100, 100),
    ]  # fmt: skip
    detail = drift_detail(drifted)
    assert detail.startswith(
        "drifted: user_words (chi2 0.0012), prompt_embedding (mmd 0.005), output_embedding; "
    )
    quoted = detail.split("prompts that moved: ")[1]
    assert quoted.startswith('"where is my flight xxx')  # whitespace folded
    assert len(quoted.split('"; "')[0]) <= MOVED_CHARS + 1
    assert quoted.endswith('…"; "book a hotel"')
    assert "outputs that moved" not in detail
    assert drift_detail([]) == ""
