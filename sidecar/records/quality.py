"""Quality vocabulary: why a request was sampled for the judge, a summary of scores, the baselines
they are compared against, and the judge's work items (a claimed request, its verdict)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sidecar.records.traffic import JsonValue, Verdict

JUDGEABLE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
FAILED_VERDICTS = frozenset({Verdict.INVALID, Verdict.UNPARSEABLE, Verdict.TRUNCATED})


class SampleReason(StrEnum):
    """Values of ``requests.judge_sample`` and ``judgements.sample_reason``."""

    RANDOM = "random"
    FLOOR = "floor"
    BATCH = "batch"  # the periodic batch: N random requests of the last days
    MANUAL = "manual"  # `sidecar judge run`, drawn at random
    SCHEMA_INVALID = "schema_invalid"
    ERROR = "error"
    THUMBS_DOWN = "thumbs_down"


# Samples drawn without looking at the answer: the only ones a quality estimate may use.
UNBIASED_REASONS = frozenset(
    {SampleReason.RANDOM, SampleReason.FLOOR, SampleReason.BATCH, SampleReason.MANUAL}
)


@dataclass(frozen=True, slots=True)
class ScoreSummary:
    n: int
    mean: float
    std: float  # sample standard deviation (0 for n < 2)
    ci_low: float
    ci_high: float
    confidence: float


@dataclass(frozen=True, slots=True)
class Baseline:
    """A row of ``baselines``: what quality (judge scores) or drift (a traffic window) of one
    model/adapter is compared against."""

    id: int
    kind: str  # quality or drift
    model: str | None
    adapter: str | None
    rubric: str | None
    rubric_version: str | None
    since: datetime
    until: datetime
    n: int
    summary: ScoreSummary | None  # quality only
    source: str  # manual or auto
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedRequest:
    """A request this replica is now responsible for judging."""

    request_id: str
    sample_reason: str
    model: str | None
    adapter: str | None
    schema_name: str | None
    request_body: JsonValue
    response_body: JsonValue


@dataclass(frozen=True, slots=True)
class JudgementResult:
    """A judge verdict, or why there is none, as written to ``judgements``."""

    status: str  # scored, error or unjudgeable
    judged_at: datetime
    rubric: str | None = None
    rubric_version: str | None = None
    judge_model: str | None = None
    score: float | None = None
    score_normalized: float | None = None
    scores: dict[str, float] | None = None
    rationale: str | None = None
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    attempts: int = 0
    error: str | None = None
