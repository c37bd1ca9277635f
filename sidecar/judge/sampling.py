"""Which requests the judge scores, decided once per row in the log writer (pure; ``rng`` injected).

Two kinds of sample, kept apart by ``requests.judge_sample`` so the quality estimate stays
unbiased:

- the **quality sample**: each request is drawn with the rule's rate (``random``); on top of that,
  every stratum (model x adapter x schema) gets the first ``min_per_window`` requests of each
  window (``floor``), so a quiet adapter is still scored. Neither looks at the answer, so the mean
  of their scores estimates the stratum's mean quality.
- the **always** samples (``schema_invalid``, ``error``): hard cases scored for the training-data
  export and for debugging, never mixed into the quality estimate. Thumbs-down feedback arrives
  later and is picked up by the judge job itself (``thumbs_down``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from sidecar.records import (
    FAILED_VERDICTS,
    JUDGEABLE_PATHS,
    LoggedRequest,
    SampleReason,
    ScopeMatch,
)

MAX_STRATA = 10_000  # bounded memory whatever names clients send


@dataclass(frozen=True, slots=True)
class SamplingRule:
    """The rate (and rubric) for the traffic in ``scope`` (model / adapter / schema)."""

    name: str
    rate: float
    scope: ScopeMatch = field(default_factory=ScopeMatch)  # matches everything
    rubric: str | None = None


@dataclass(frozen=True, slots=True)
class SamplingPolicy:
    rules: tuple[SamplingRule, ...]  # first match wins; the last one should match everything
    min_per_window: int = 5
    window_s: float = 3600.0
    always: frozenset[str] = frozenset({SampleReason.SCHEMA_INVALID})

    def rule_for(
        self, model: str | None, adapter: str | None, schema: str | None
    ) -> SamplingRule | None:
        return next(
            (rule for rule in self.rules if rule.scope.matches(model, adapter, schema=schema)), None
        )


Stratum = tuple[str | None, str | None, str | None]


class Sampler:
    """Decides ``judge_sample`` for each row; remembers how many each stratum got this window."""

    def __init__(self, policy: SamplingPolicy, rng: random.Random) -> None:
        self.policy = policy
        self.rng = rng
        self.paused = False  # set while the judge's daily budget is spent
        self._window: dict[Stratum, tuple[int, int]] = {}  # stratum -> (window index, sampled)

    def decide(self, row: LoggedRequest, now_s: float) -> str | None:
        """The sample reason for ``row``, or None when it is not sampled."""
        if self.paused or row.path not in JUDGEABLE_PATHS:
            return None
        if not 200 <= row.status < 300 or row.error_kind is not None:
            return SampleReason.ERROR if SampleReason.ERROR in self.policy.always else None
        rule = self.policy.rule_for(row.model, row.adapter, row.schema_name)
        if rule is None:
            return None
        stratum = (row.model, row.adapter, row.schema_name)
        window = int(now_s // self.policy.window_s)
        index, sampled = self._window.get(stratum, (window, 0))
        if index != window:
            sampled = 0
        reason = None
        if rule.rate > 0 and self.rng.random() < rule.rate:
            reason = SampleReason.RANDOM
        elif sampled < self.policy.min_per_window and rule.rate > 0:
            reason = SampleReason.FLOOR
        if reason is not None:
            if len(self._window) >= MAX_STRATA and stratum not in self._window:
                self._window.clear()
            self._window[stratum] = (window, sampled + 1)
            return reason
        return self._always(row)

    def _always(self, row: LoggedRequest) -> str | None:
        always = self.policy.always
        if SampleReason.SCHEMA_INVALID in always and row.schema_verdict in FAILED_VERDICTS:
            return SampleReason.SCHEMA_INVALID
        if SampleReason.ERROR in always and row.finish_reason == "length":
            return SampleReason.ERROR
        return None


def sampling_policy(
    rules: Sequence[SamplingRule],
    default_rate: float,
    *,
    min_per_window: int,
    window_s: float,
    always: Sequence[str],
) -> SamplingPolicy:
    """The configured rules followed by a catch-all at ``default_rate``."""
    catch_all = SamplingRule("default", default_rate)
    return SamplingPolicy((*rules, catch_all), min_per_window, window_s, frozenset(always))
