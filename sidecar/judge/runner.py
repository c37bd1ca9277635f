"""The judge loop a sidecar runs: a continuous round every ``judge.interval_s``, and the periodic
batch when ``judge.batch_cron`` is due. A round the database cannot serve is skipped; a failing
round is logged and never stops the loop."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sidecar.judge.job import JudgeJob, batch_window, next_batch_time
from sidecar.records import SampleReason
from sidecar.scheduler import run_every
from sidecar.store.errors import is_connectivity_error
from sidecar.store.judgements import batch_turn

logger = logging.getLogger("sidecar.judge")


async def run_judge(job: JudgeJob, ready: asyncio.Event) -> None:
    await ready.wait()  # the schema exists
    settings = job.settings
    cron = settings.batch_cron
    due = next_batch_time(cron, datetime.now(UTC)) if cron else None

    async def one_round(now: datetime) -> None:
        nonlocal due
        result = await job.run_round(now)
        if result.claimed:
            logger.info(
                "judge round: %d claimed, %d scored, %d errors, %d unjudgeable, %d unavailable",
                result.claimed,
                result.scored,
                result.errors,
                result.unjudgeable,
                result.unavailable,
            )
        if cron and due is not None and now >= due:
            await _batch(job, due, now)
            due = next_batch_time(cron, now)

    try:
        await run_every("judge", settings.interval_s, one_round, metrics=job.metrics,
                        is_outage=is_connectivity_error)  # fmt: skip
    finally:
        await job.client.close()


async def _batch(job: JudgeJob, due: datetime, now: datetime) -> None:
    async with batch_turn(job.engine, due) as mine:
        if not mine:
            return
        result = await job.run_batch(
            now,
            window=batch_window(now, job.settings.lookback_s),
            limit=job.settings.batch_samples,
            reason=SampleReason.BATCH,
        )
        logger.info("periodic judge batch: %d judged, %d scored", result.claimed, result.scored)
