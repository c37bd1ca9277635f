"""The judge job: claim samples, ask the judge, store the verdicts, keep spend under the caps.

Runs in every sidecar (continuous mode: a round every ``judge.interval_s``); claiming makes each
request judged once across replicas. The periodic batch (``judge.batch_cron``) and
``sidecar judge run`` use the same :meth:`JudgeJob.judge` path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import random
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.errors import JudgeRejected, JudgeUnavailable
from sidecar.judge.baselines import auto_quality_baselines
from sidecar.judge.client import JudgeClient
from sidecar.judge.rubric import (
    DEFAULT_RUBRIC,
    JudgeReplyError,
    NotJudgeable,
    Rubric,
    Scores,
    judge_input,
    judge_messages,
    load_rubric,
    parse_verdict,
    verdict_format,
)
from sidecar.judge.sampling import Sampler, SamplingRule, sampling_policy
from sidecar.metrics import SidecarMetrics
from sidecar.records import ClaimedRequest, JudgementResult, TimeWindow
from sidecar.settings import JudgeSettings
from sidecar.store import judgements as store
from sidecar.store.errors import is_connectivity_error

logger = logging.getLogger("sidecar.judge")

REPLY_TRIES = 2  # an unusable reply is asked once more, then recorded as an error
FIRST_CALL_ESTIMATE_TOKENS = (500, 100)  # (in, out) until today's calls give a real average


def replica_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class RoundResult:
    claimed: int = 0
    scored: int = 0
    errors: int = 0
    unjudgeable: int = 0
    unavailable: int = 0
    budget_left: int = 0
    notes: list[str] = field(default_factory=list)


class Rubrics:
    """The rubric for a request: its judge rule's, else ``judge.rubric``, else the built-in."""

    def __init__(self, settings: JudgeSettings) -> None:
        self.default = load_rubric(settings.rubric) if settings.rubric else DEFAULT_RUBRIC
        self.rules = [
            SamplingRule(
                rule.name,
                settings.sample_rate if rule.sample_rate is None else rule.sample_rate,
                rule.scope,
                rule.rubric,
            )
            for rule in settings.rules
        ]
        self._loaded = {path: load_rubric(path) for rule in self.rules if (path := rule.rubric)}

    def for_request(self, model: str | None, adapter: str | None, schema: str | None) -> Rubric:
        rule = next((r for r in self.rules if r.scope.matches(model, adapter, schema=schema)), None)
        return self._loaded[rule.rubric] if rule is not None and rule.rubric else self.default


def build_sampler(settings: JudgeSettings, rubrics: Rubrics, rng: random.Random) -> Sampler:
    policy = sampling_policy(
        rubrics.rules,
        settings.sample_rate,
        min_per_window=settings.min_samples_per_window,
        window_s=settings.sample_window_s,
        always=settings.always_sample,
    )
    return Sampler(policy, rng)


class JudgeJob:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: JudgeSettings,
        metrics: SidecarMetrics,
        client: JudgeClient,
        *,
        rubrics: Rubrics | None = None,
        sampler: Sampler | None = None,
        replica: str | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.metrics = metrics
        self.client = client
        self.rubrics = rubrics or Rubrics(settings)
        self.sampler = sampler
        self.replica = replica or replica_id()
        self._paused_day: datetime | None = None
        # Verdicts paid for while the database was away: written before anything new is claimed
        # (the claims stay this replica's), so an outage neither loses a verdict nor pays twice.
        self._kept: list[tuple[str, JudgementResult]] = []

    async def budget(self, now: datetime) -> int:
        """Judge calls still allowed today (UTC) by both caps; pauses sampling at zero."""
        day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        calls, cost = await store.spent_since(self.engine, day)
        settings = self.settings
        left = settings.max_calls_per_day - calls
        per_call = cost / calls if calls and cost else _estimate(settings)
        if per_call > 0:
            left = min(left, math.floor((settings.max_cost_per_day_usd - cost) / per_call))
        exhausted = left <= 0
        self.metrics.judge_budget_exhausted.set(1 if exhausted else 0)
        if self.sampler is not None:
            self.sampler.paused = exhausted
        if exhausted and self._paused_day != day:
            self._paused_day = day
            logger.warning(
                "judge budget for %s reached (%d calls, $%.4f): sampling paused until the next "
                "UTC day",
                day.date(),
                calls,
                cost,
            )
        return max(0, left)

    async def run_round(self, now: datetime) -> RoundResult:
        """Continuous mode: judge what the writer sampled (and thumbs-down) since the lookback."""
        await self.store_kept()
        left = await self.budget(now)
        if left == 0:
            return RoundResult(budget_left=0)
        claimed = await store.claim_samples(
            self.engine,
            replica=self.replica,
            now=now,
            lookback_s=self.settings.lookback_s,
            limit=min(left, self.settings.batch_size),
            thumbs_down="thumbs_down" in self.settings.always_sample,
            claim_timeout_s=self.settings.claim_timeout_s,
        )
        result = await self.judge(claimed)
        result.budget_left = left - result.claimed
        await self._auto_baselines(now)
        return result

    async def judge(
        self, request_ids: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> RoundResult:
        """Judge claimed requests concurrently (the client bounds in-flight calls)."""
        result = RoundResult(claimed=len(request_ids))
        items = await store.load_claimed(self.engine, request_ids)

        async def one(item: ClaimedRequest) -> None:
            status = await self._judge_one(item)
            setattr(result, status, getattr(result, status) + 1)
            if progress is not None:
                progress(1)

        await asyncio.gather(*(one(item) for item in items))
        return result

    async def _judge_one(self, item: ClaimedRequest) -> str:
        """Judge one claimed request; returns the RoundResult counter to bump."""
        rubric = self.rubrics.for_request(item.model, item.adapter, item.schema_name)
        base = JudgementResult(
            "unjudgeable", _now(), rubric.name, rubric.version, self.settings.model
        )
        try:
            prepared = judge_input(item.request_body, item.response_body, rubric.reference_field)
        except NotJudgeable as exc:
            await self._record(item, dataclasses.replace(base, error=str(exc)))
            return "unjudgeable"
        try:
            scores, spent = await self._ask(rubric, judge_messages(rubric, prepared), base)
        except JudgeUnavailable as exc:
            # Not the sample's fault: give the claim back so a later round judges it.
            logger.warning("judge unavailable, will retry later: %s", exc)
            await store.release(self.engine, [item.request_id], self.replica)
            self.metrics.judge_requests.labels("unavailable").inc()
            return "unavailable"
        self.metrics.judge_cost.inc(spent.cost_usd or 0.0)
        if scores is None:
            await self._record(item, spent)
            return "errors"
        await self._record(item, dataclasses.replace(
            spent, status="scored", score=scores.overall, score_normalized=scores.normalized,
            scores=scores.criteria, rationale=scores.rationale,
        ))  # fmt: skip
        model = self.metrics.model_label(item.model)
        self.metrics.judge_score.labels(model, rubric.name).observe(scores.normalized)
        return "scored"

    async def _ask(
        self, rubric: Rubric, messages: list[dict[str, str]], base: JudgementResult
    ) -> tuple[Scores | None, JudgementResult]:
        """Call the judge (a second time if the reply is unusable); the usage, and the error
        when there is no score. Raises JudgeUnavailable (nothing recorded)."""
        attempts = prompt_tokens = completion_tokens = 0
        latency_ms = 0.0
        scores, problem = None, ""
        try:
            for _ in range(REPLY_TRIES):
                reply = await self.client.complete(messages, verdict_format(rubric))
                attempts += reply.attempts
                prompt_tokens += reply.prompt_tokens
                completion_tokens += reply.completion_tokens
                latency_ms += reply.latency_ms
                try:
                    scores = parse_verdict(reply.text, rubric)
                    break
                except JudgeReplyError as exc:
                    problem = f"unusable judge reply ({exc})"
        except JudgeRejected as exc:
            attempts += exc.attempts
            problem = str(exc)
        settings = self.settings
        cost = (
            prompt_tokens * settings.input_per_million_usd
            + completion_tokens * settings.output_per_million_usd
        ) / 1e6
        spent = dataclasses.replace(
            base, status="error", judged_at=_now(), latency_ms=latency_ms,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=cost,
            attempts=attempts, error=None if scores is not None else problem,
        )  # fmt: skip
        return scores, spent

    async def _record(self, item: ClaimedRequest, result: JudgementResult) -> None:
        self.metrics.judge_requests.labels(result.status).inc()
        try:
            await self._write(item.request_id, result)
        except Exception as exc:
            if not is_connectivity_error(exc):
                raise
            if not self._kept:
                logger.warning("database unreachable: keeping judge verdicts to write when it "
                               "answers (%s)", exc)  # fmt: skip
            self._kept.append((item.request_id, result))

    async def _write(self, request_id: str, result: JudgementResult) -> None:
        if not await store.record_result(self.engine, request_id, self.replica, result):
            logger.info("judgement for %s dropped: another replica took the claim over", request_id)

    async def store_kept(self) -> None:
        """Write the verdicts an outage kept back; raises while the database is still away."""
        written = 0
        while self._kept:
            await self._write(*self._kept[0])
            self._kept.pop(0)
            written += 1
        if written:
            logger.info("wrote %d judge verdicts kept during a database outage", written)

    async def _auto_baselines(self, now: datetime) -> None:
        if self.settings.baseline_auto_samples <= 0:
            return
        for baseline in await auto_quality_baselines(
            self.engine,
            now=now,
            samples=self.settings.baseline_auto_samples,
            lookback_s=self.settings.lookback_s,
            confidence=self.settings.confidence,
        ):
            assert baseline.summary is not None
            logger.info(
                "quality baseline set automatically for model=%s adapter=%s: mean %.3f (n=%d)",
                baseline.model,
                baseline.adapter,
                baseline.summary.mean,
                baseline.n,
            )

    async def run_batch(
        self,
        now: datetime,
        *,
        window: TimeWindow,
        limit: int,
        reason: str,
        progress: Callable[[int], None] | None = None,
    ) -> RoundResult:
        """Judge up to ``limit`` random requests of a window (of its model, when it names one):
        the batch and on-demand modes."""
        total = RoundResult()
        while total.claimed < limit:
            await self.store_kept()
            left = await self.budget(now)
            if left == 0:
                total.notes.append("daily judge budget reached: stopped early")
                break
            chunk = min(limit - total.claimed, left, max(self.settings.concurrency * 4, 1))
            claimed = await store.claim_random(
                self.engine,
                replica=self.replica,
                now=now,
                window=window,
                limit=chunk,
                reason=reason,
            )
            if not claimed:
                break
            found = await self.judge(claimed, progress)
            for name in ("claimed", "scored", "errors", "unjudgeable", "unavailable"):
                setattr(total, name, getattr(total, name) + getattr(found, name))
            if found.unavailable:
                total.notes.append("the judge was unavailable: stopped early")
                break
            now = max(now, datetime.now(UTC))
        await self._auto_baselines(now)
        return total


def _estimate(settings: JudgeSettings) -> float:
    tokens_in, tokens_out = FIRST_CALL_ESTIMATE_TOKENS
    return (
        tokens_in * settings.input_per_million_usd + tokens_out * settings.output_per_million_usd
    ) / 1e6


def _now() -> datetime:
    return datetime.now(UTC)


def next_batch_time(cron: str, after: datetime) -> datetime:
    """The next time the periodic batch is due (crontab syntax, UTC), via APScheduler."""
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(cron, timezone=UTC)
    moment: datetime | None = trigger.get_next_fire_time(None, after)
    if moment is None:
        raise ValueError(f"judge.batch_cron {cron!r} never fires")
    return moment.astimezone(UTC)


def batch_window(now: datetime, lookback_s: float) -> TimeWindow:
    """The periodic batch draws from the ``lookback_s`` before ``now``."""
    return TimeWindow.last(lookback_s, now)
