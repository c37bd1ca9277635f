"""The drift job with drift.embeddings on, over real databases: embedding features in
drift_checks with the prompts that moved, the body policy's reason, the report and the alert."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.alerts.evaluate import evaluate
from sidecar.alerts.readers import READERS, rule_definitions
from sidecar.drift.embeddings import embed_row, load_embedder
from sidecar.drift.features import extract_features
from sidecar.drift.job import run_drift
from sidecar.metrics import SidecarMetrics
from sidecar.records import LoggedRequest, TimeWindow
from sidecar.reports.base import ReportOptions
from sidecar.reports.drift import drift as drift_report
from sidecar.settings import AlertRuleSettings, DriftSettings, EmbeddingSettings
from sidecar.store.tables import drift_checks_table
from sidecar.store.writes import insert_requests
from sidecar.testing.factories import logged_request as make_row
from sidecar.testing.topics import MONEY_WIDE, TRAVEL_WIDE, carrier_question

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SETTINGS = DriftSettings(window_s=86400, interval_s=3600,
                         embeddings=EmbeddingSettings(enabled=True))  # fmt: skip


def traffic(seed: int, n: int, start: datetime, words: list[str], *, bodies: str = "full",
            model_name: str = "static") -> list[LoggedRequest]:  # fmt: skip
    rng = random.Random(seed)
    model = load_embedder(model_name)
    rows = []
    for index in range(n):
        text = carrier_question(rng, words)
        request = {"model": "support", "messages": [{"role": "user", "content": text}]}
        row = make_row(
            started_at=start + timedelta(seconds=index * 60), model="support", adapter=None,
            request_body=request if bodies != "none" else None, body_policy=bodies,
            response_body=None if bodies == "none" else make_row().response_body,
            schema_verdict=None, schema_name=None,
        )  # fmt: skip
        prompt, output = embed_row(row, model, ("prompt", "output"))
        rows.append(dataclasses.replace(row, features=extract_features(row).as_json(),
                                        prompt_embedding=prompt, output_embedding=output))  # fmt: skip
    return rows


async def checks(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with engine.connect() as connection:
        found = (await connection.execute(sa.select(drift_checks_table))).mappings().all()
    return {row["feature"]: dict(row) for row in found}


async def test_a_topic_change_names_the_prompt_embedding_with_the_prompts_that_moved(
    engine: AsyncEngine,
) -> None:
    before = traffic(1, 60, NOW - 2 * DAY, MONEY_WIDE)
    after = traffic(2, 60, NOW - DAY, TRAVEL_WIDE)
    await insert_requests(engine, before + after)
    await run_drift(engine, SETTINGS, SidecarMetrics(CollectorRegistry()), NOW)
    stored = await checks(engine)
    prompt = stored["prompt_embedding"]
    assert (prompt["kind"], prompt["statistic"], prompt["drifted"]) == ("embedding", "mmd", True)
    assert (prompt["n_ref"], prompt["n_cur"]) == (60, 60)
    assert prompt["value"] < 0.05
    examples = [mover[0] for mover in prompt["top_movers"]]
    assert examples
    assert all(any(word in text.split() for word in TRAVEL_WIDE) for text in examples)
    assert all(ref < cur for _, ref, cur in prompt["top_movers"])
    assert stored["output_embedding"]["drifted"] is False  # the same answer in both windows
    rule = next(r for r in rule_definitions([AlertRuleSettings(
        name="drift", features=["prompt_embedding"], threshold=0, min_samples=1)])
        if r.spec.name == "drift")  # fmt: skip
    async with engine.connect() as connection:
        readings = await READERS["drift"](connection, rule, NOW + timedelta(minutes=1))
        report = await drift_report(connection, TimeWindow(NOW - DAY, NOW + DAY), ReportOptions())
    assert [reading.value for reading in readings] == [100.0]
    _, transitions = evaluate({"drift": rule.spec}, readings, {}, NOW + timedelta(minutes=1))
    assert [transition.event for transition in transitions] == ["firing"]
    row = next(row for row in report.rows if row[2] == "prompt_embedding")
    assert row[6] == "DRIFT"
    assert examples[0][:40] in row[11]
    assert "mmd2" in row[10]


async def test_without_stored_bodies_the_embedding_check_says_why(engine: AsyncEngine) -> None:
    before = traffic(1, 40, NOW - 2 * DAY, MONEY_WIDE, bodies="none")
    after = traffic(2, 40, NOW - DAY, TRAVEL_WIDE, bodies="none")
    assert all(row.prompt_embedding is None and row.output_embedding is None
               for row in before + after)  # fmt: skip
    await insert_requests(engine, before + after)
    await run_drift(engine, SETTINGS, SidecarMetrics(CollectorRegistry()), NOW)
    stored = await checks(engine)
    for feature in ("prompt_embedding", "output_embedding"):
        assert stored[feature]["drifted"] is None
        assert stored[feature]["reason"] == (
            "no embeddings: 80 of 80 requests were logged with request_log.bodies: none, so "
            "there was no text to embed"
        )


async def test_with_embeddings_off_only_stored_vectors_are_checked(engine: AsyncEngine) -> None:
    plain = [dataclasses.replace(row, prompt_embedding=None, output_embedding=None)
             for row in traffic(1, 40, NOW - 2 * DAY, MONEY_WIDE)
             + traffic(2, 40, NOW - DAY, TRAVEL_WIDE)]  # fmt: skip
    await insert_requests(engine, plain)
    off = DriftSettings(window_s=86400)
    await run_drift(engine, off, SidecarMetrics(CollectorRegistry()), NOW)
    assert "prompt_embedding" not in await checks(engine)
    # `sidecar drift run` without the sidecar's configuration still checks the stored vectors.
    await insert_requests(engine, traffic(3, 40, NOW - timedelta(hours=1), TRAVEL_WIDE))
    await run_drift(engine, off, SidecarMetrics(CollectorRegistry()), NOW, force=True)
    async with engine.connect() as connection:
        features = {row[0] for row in await connection.execute(sa.select(
            drift_checks_table.c.feature).where(drift_checks_table.c.kind == "embedding"))}  # fmt: skip
    assert features == {"prompt_embedding", "output_embedding"}


async def test_with_minilm_a_topic_change_is_named_from_its_own_vectors(
    engine: AsyncEngine,
) -> None:
    minilm = DriftSettings(window_s=86400, interval_s=3600,
                           embeddings=EmbeddingSettings(enabled=True, model="minilm"))  # fmt: skip
    before = traffic(1, 60, NOW - 2 * DAY, MONEY_WIDE, model_name="minilm")
    after = traffic(2, 60, NOW - DAY, TRAVEL_WIDE, model_name="minilm")
    assert before[0].prompt_embedding is not None
    assert len(before[0].prompt_embedding) == 385
    await insert_requests(engine, before + after)
    await run_drift(engine, minilm, SidecarMetrics(CollectorRegistry()), NOW)
    prompt = (await checks(engine))["prompt_embedding"]
    assert (prompt["drifted"], prompt["n_ref"], prompt["n_cur"]) == (True, 60, 60)
    assert all(any(word in mover[0].split() for word in TRAVEL_WIDE)
               for mover in prompt["top_movers"])  # fmt: skip


async def test_after_switching_models_the_check_asks_for_a_new_baseline(
    engine: AsyncEngine,
) -> None:
    """A static reference and a MiniLM current window are different spaces: no verdict, and
    the reason says what to do, instead of a drift alert on every check."""
    minilm = DriftSettings(window_s=86400, interval_s=3600,
                           embeddings=EmbeddingSettings(enabled=True, model="minilm"))  # fmt: skip
    before = traffic(1, 40, NOW - 2 * DAY, MONEY_WIDE, model_name="static")
    after = traffic(2, 40, NOW - DAY, MONEY_WIDE, model_name="minilm")
    await insert_requests(engine, before + after)
    await run_drift(engine, minilm, SidecarMetrics(CollectorRegistry()), NOW)
    prompt = (await checks(engine))["prompt_embedding"]
    assert prompt["drifted"] is None
    assert "pin a new drift baseline after switching models" in prompt["reason"]
