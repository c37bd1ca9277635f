"""Quality vocabulary: why a request was sampled for the judge, and a summary of scores."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sidecar.records.traffic import Verdict

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
