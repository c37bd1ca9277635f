"""The judge job against real databases (SQLite and Postgres) and a fake judge on port 0."""

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

from sidecar.judge.client import JudgeClient
from sidecar.judge.job import JudgeJob, Rubrics, build_sampler
from sidecar.metrics import SidecarMetrics
from sidecar.records import Feedback, LoggedRequest, SampleReason, TimeWindow
from sidecar.settings import JudgeSettings
from sidecar.store.baselines import QUALITY, active_baselines
from sidecar.store.engine import create_engine
from sidecar.store.errors import is_connectivity_error
from sidecar.store.feedback import upsert_feedback
from sidecar.store.judgements import claim_samples
from sidecar.store.tables import judgements_table
from sidecar.store.writes import insert_requests
from sidecar.testing.factories import logged_request as make_row
from sidecar.testing.fake_judge import FakeJudge, Fault
from sidecar.testing.servers import RunningServer, start_server
from sidecar.testing.tcp_relay import tcp_relay

NOW = datetime.now(UTC).replace(microsecond=0)


async def no_wait(seconds: float) -> None:
    return None


def make_job(engine: AsyncEngine, url: str, **changes: Any) -> JudgeJob:
    values: dict[str, Any] = {"enabled": True, "base_url": f"{url}/v1", "model": "judge-1",
                              "max_retries": 1, "baseline_auto_samples": 0, **changes}  # fmt: skip
    settings = JudgeSettings(**values)
    metrics = SidecarMetrics(CollectorRegistry())
    rubrics = Rubrics(settings)
    return JudgeJob(
        engine, settings, metrics, JudgeClient(settings, sleep=no_wait), rubrics=rubrics,
        sampler=build_sampler(settings, rubrics, random.Random(1)),
    )  # fmt: skip


def sampled(
    quality: int | None = 4, *, reason: str | None = "random", **changes: Any
) -> LoggedRequest:
    answer = "All good." + (f" quality={quality}" if quality is not None else "")
    body = {
        "id": "chatcmpl-1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}],
    }
    values: dict[str, Any] = {"judge_sample": reason, "started_at": NOW - timedelta(minutes=5),
                              "response_body": body, "schema_name": None, "schema_verdict": None}  # fmt: skip
    return make_row(**{**values, **changes})


async def judgements(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        query = sa.select(judgements_table).order_by(judgements_table.c.request_started_at)
        return [dict(row) for row in (await connection.execute(query)).mappings()]


async def test_samples_are_scored_and_stored_beside_the_request(
    engine: AsyncEngine, judge_server: RunningServer
) -> None:
    rows = [sampled(4), sampled(2), sampled(None, reason=None)]
    await insert_requests(engine, rows)
    job = make_job(engine, judge_server.url)
    result = await job.run_round(NOW)
    await job.client.close()
    assert (result.claimed, result.scored) == (2, 2)
    stored = {row["request_id"]: row for row in await judgements(engine)}
    assert set(stored) == {rows[0].id, rows[1].id}
    first = stored[rows[0].id]
    assert first["status"] == "scored"
    assert first["score"] == 4.0
    assert first["score_normalized"] == 0.75
    assert first["scores"] == {"correctness": 4, "helpfulness": 4, "format": 4, "tone": 4}
    assert first["rubric"] == "default"
    assert len(first["rubric_version"]) == 12
    assert first["judge_model"] == "judge-1"
    assert first["attempts"] == 1
    assert first["cost_usd"] > 0
    assert first["prompt_tokens"] > 0
    assert first["model"] == "support-lora"
    assert first["sample_reason"] == "random"
    assert stored[rows[1].id]["score"] == 2.0
    # Nothing left: a second round claims nothing.
    assert (await job.run_round(NOW)).claimed == 0


async def test_bodies_not_stored_are_recorded_unjudgeable_without_a_call(
    engine: AsyncEngine, judge_server: RunningServer, judge: FakeJudge
) -> None:
    row = sampled(request_body=None, response_body=None, body_policy="none")
    await insert_requests(engine, [row])
    job = make_job(engine, judge_server.url)
    result = await job.run_round(NOW)
    await job.client.close()
    assert result.unjudgeable == 1
    assert judge.requests == []
    (stored,) = await judgements(engine)
    assert stored["status"] == "unjudgeable"
    assert stored["score"] is None
    assert "bodies not stored" in stored["error"]


@pytest.mark.parametrize(
    ("faults", "status", "score"),
    [(["garbage"], "scored", 4.0), (["garbage", "out_of_range"], "error", None)],
)
async def test_an_unusable_reply_is_asked_again_once_then_recorded_as_an_error(
    engine: AsyncEngine, judge_server: RunningServer, judge: FakeJudge, faults: list[str],
    status: str, score: float | None,
) -> None:  # fmt: skip
    await insert_requests(engine, [sampled(4)])
    judge.script.extend(Fault(kind) for kind in faults)
    job = make_job(engine, judge_server.url)
    await job.run_round(NOW)
    await job.client.close()
    (stored,) = await judgements(engine)
    assert (stored["status"], stored["score"], stored["attempts"]) == (status, score, 2)
    if status == "error":
        assert "unusable judge reply" in stored["error"]
        assert "outside 1-5" in stored["error"]


async def test_a_judge_that_is_down_leaves_samples_for_a_later_round(
    engine: AsyncEngine, judge_server: RunningServer, judge: FakeJudge
) -> None:
    await insert_requests(engine, [sampled(4), sampled(3)])
    judge.fail(503, times=4)  # max_retries=1: two attempts per sample
    job = make_job(engine, judge_server.url, concurrency=1)
    result = await job.run_round(NOW)
    assert result.unavailable == 2
    assert result.scored == 0
    assert await judgements(engine) == []  # claims released, no score invented
    assert job.metrics.judge_requests.labels("unavailable")._value.get() == 2
    later = await job.run_round(NOW)
    await job.client.close()
    assert later.scored == 2


async def test_a_rejected_request_is_recorded_and_not_retried(
    engine: AsyncEngine, judge_server: RunningServer, judge: FakeJudge
) -> None:
    await insert_requests(engine, [sampled(4)])
    judge.fail(400)
    job = make_job(engine, judge_server.url)
    await job.run_round(NOW)
    await job.client.close()
    (stored,) = await judgements(engine)
    assert stored["status"] == "error"
    assert "400" in stored["error"]


async def test_the_daily_call_cap_pauses_sampling_until_tomorrow(
    engine: AsyncEngine, judge_server: RunningServer, judge: FakeJudge
) -> None:
    await insert_requests(
        engine, [sampled(4, started_at=NOW - timedelta(minutes=i + 1)) for i in range(5)]
    )
    job = make_job(engine, judge_server.url, max_calls_per_day=3)
    first = await job.run_round(NOW)
    assert first.scored == 3
    assert (await job.run_round(NOW)).claimed == 0
    assert job.sampler is not None
    assert job.sampler.paused
    assert job.metrics.judge_budget_exhausted._value.get() == 1
    tomorrow = await job.run_round(NOW + timedelta(days=1))
    await job.client.close()
    assert not job.sampler.paused
    assert tomorrow.scored == 2
    assert len(judge.requests) == 5


async def test_the_daily_cost_cap_counts_dollars(
    engine: AsyncEngine, judge_server: RunningServer
) -> None:
    await insert_requests(
        engine, [sampled(4, started_at=NOW - timedelta(minutes=i + 1)) for i in range(6)]
    )
    # Each fake call costs ~ (prompt/4 + reply/4 tokens) at $1000/M: ~$0.2-0.3; cap $0.6.
    job = make_job(engine, judge_server.url, max_cost_per_day_usd=0.6, input_per_million_usd=1000,
                   output_per_million_usd=1000, batch_size=1)  # fmt: skip
    for _ in range(6):
        await job.run_round(NOW)
    await job.client.close()
    spent = sum(row["cost_usd"] for row in await judgements(engine))
    assert 0 < spent <= 0.6 + 0.3  # at most one call past the cap (estimated per call)
    assert len(await judgements(engine)) < 6


async def test_thumbs_down_requests_are_judged_as_hard_cases(
    engine: AsyncEngine, judge_server: RunningServer
) -> None:
    disliked = sampled(2, reason=None)
    await insert_requests(engine, [disliked])
    await upsert_feedback(
        engine, Feedback(disliked.id, "u1", "down", 1, False, False, None, NOW, NOW)
    )
    job = make_job(engine, judge_server.url)
    await job.run_round(NOW)
    await job.client.close()
    (stored,) = await judgements(engine)
    assert stored["sample_reason"] == SampleReason.THUMBS_DOWN
    assert stored["score"] == 2.0


async def test_an_abandoned_claim_is_taken_over(
    engine: AsyncEngine, judge_server: RunningServer
) -> None:
    await insert_requests(engine, [sampled(4)])
    claimed = await claim_samples(
        engine, replica="killed-replica", now=NOW - timedelta(minutes=2), lookback_s=86400,
        limit=10, thumbs_down=False, claim_timeout_s=60,
    )  # fmt: skip
    assert len(claimed) == 1
    job = make_job(engine, judge_server.url, claim_timeout_s=60)
    result = await job.run_round(NOW)
    await job.client.close()
    assert result.scored == 1
    (stored,) = await judgements(engine)
    assert stored["claimed_by"] == job.replica
    assert stored["status"] == "scored"


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_replicas_at_once_judge_each_sample_exactly_once(
    engine: AsyncEngine, judge_server: RunningServer, judge: FakeJudge
) -> None:
    rows = [sampled(1 + i % 5, started_at=NOW - timedelta(seconds=i + 1)) for i in range(60)]
    await insert_requests(engine, rows)
    jobs = [make_job(engine, judge_server.url, batch_size=7) for _ in range(3)]

    async def drain(job: JudgeJob) -> int:
        total = 0
        for _ in range(40):  # a round can come back empty while another replica holds the rows
            total += (await job.run_round(NOW)).claimed
            if len(await judgements(engine)) == len(rows):
                break
        return total

    counts = await asyncio.gather(*(drain(job) for job in jobs))
    for job in jobs:
        await job.client.close()
    assert sum(counts) == 60
    assert len(judge.requests) == 60  # no sample sent to the judge twice
    stored = await judgements(engine)
    assert sorted(row["request_id"] for row in stored) == sorted(row.id for row in rows)


async def test_the_first_judged_samples_become_the_baseline(
    engine: AsyncEngine, judge_server: RunningServer
) -> None:
    rows = [sampled(3 + i % 2, started_at=NOW - timedelta(minutes=30 - i)) for i in range(12)]
    await insert_requests(engine, rows)
    job = make_job(engine, judge_server.url, baseline_auto_samples=10)
    await job.run_round(NOW)
    await job.client.close()
    async with engine.connect() as connection:
        (baseline,) = await active_baselines(connection, QUALITY)
    assert baseline.source == "auto"
    assert baseline.n == 10
    assert baseline.summary is not None
    assert baseline.summary.mean == 3.5
    assert (baseline.model, baseline.adapter) == ("support-lora", "support-lora")


async def test_batch_mode_judges_random_requests_of_a_window(
    engine: AsyncEngine, judge_server: RunningServer
) -> None:
    rows = [sampled(4, reason=None, started_at=NOW - timedelta(hours=i)) for i in range(30)]
    failed = dataclasses.replace(sampled(4, reason=None), id="f" * 32, status=500)
    await insert_requests(engine, [*rows, failed])
    job = make_job(engine, judge_server.url)
    ticks: list[int] = []
    result = await job.run_batch(
        NOW, window=TimeWindow(NOW - timedelta(days=7), NOW), limit=10, reason=SampleReason.BATCH,
        progress=ticks.append,
    )  # fmt: skip
    await job.client.close()
    assert result.scored == 10
    assert sum(ticks) == 10
    stored = await judgements(engine)
    assert {row["sample_reason"] for row in stored} == {"batch"}
    assert "f" * 32 not in {row["request_id"] for row in stored}


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_verdicts_the_database_cannot_take_are_kept_and_written_once_it_answers(
    engine: AsyncEngine, migrated_database_url: str
) -> None:
    """The database goes away while the judge is answering: the verdicts (paid for) are kept,
    the next round is skipped, and once the database answers they are written before anything
    new is claimed; nothing is asked twice."""
    rows = [sampled(4), sampled(3)]
    await insert_requests(engine, rows)
    parts = sa.make_url(migrated_database_url)
    judge = FakeJudge()
    with tcp_relay(parts.host or "127.0.0.1", parts.port or 5432) as relay:

        async def cut_then_answer(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and not judge.requests:
                relay.cut()
            await judge(scope, receive, send)

        server = start_server(cut_then_answer)
        relayed = create_engine(parts.set(port=relay.port).render_as_string(hide_password=False))
        job = make_job(relayed, server.url)
        try:
            first = await job.run_round(NOW)
            with pytest.raises(Exception) as failure:  # noqa: PT011 - whatever the driver raises
                await job.run_round(NOW)
            assert is_connectivity_error(failure.value)
            relay.restore()
            again = await job.run_round(NOW + timedelta(seconds=1))
        finally:
            await job.client.close()
            await relayed.dispose()
            server.stop()
    assert (first.claimed, first.scored, again.claimed) == (2, 2, 0)
    stored = await judgements(engine)
    assert sorted((row["status"], row["score"]) for row in stored) == [
        ("scored", 3.0), ("scored", 4.0)
    ]  # fmt: skip
    assert len(judge.requests) == 2
