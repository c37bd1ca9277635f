"""Quality against a baseline (pure statistics, scipy).

A drop is flagged only when all three hold: at least ``min_samples`` current scores, the current
mean is more than ``max_drop`` below the baseline mean, and Welch's one-sided t-test says the
current mean is lower than the baseline's at the chosen confidence. The first guards against a
quiet hour, the second against alerting on a real but tiny drop, the third against noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from sidecar.records import ScoreSummary


def summarize(scores: Sequence[float], confidence: float = 0.95) -> ScoreSummary:
    """Mean with a two-sided Student-t confidence interval."""
    n = len(scores)
    if n == 0:
        raise ValueError("no scores to summarize")
    mean = statistics.fmean(scores)
    std = statistics.stdev(scores) if n > 1 else 0.0
    if n < 2 or std == 0:
        return ScoreSummary(n, mean, std, mean, mean, confidence)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return ScoreSummary(n, mean, std, mean - half, mean + half, confidence)


@dataclass(frozen=True, slots=True)
class DropVerdict:
    flagged: bool
    drop: float | None  # relative: 0.15 = the current mean is 15% below the baseline mean
    p_value: float | None  # Welch's one-sided test that the current mean is lower
    n: int
    current: ScoreSummary | None
    reason: str | None = None  # why there is no verdict

    @property
    def significant_drop_pct(self) -> float:
        """The drop in percent when it is statistically significant, else 0 (the alert value)."""
        if self.drop is None or self.p_value is None or self.current is None:
            return 0.0
        alpha = 1 - self.current.confidence
        return max(0.0, 100.0 * self.drop) if self.p_value < alpha else 0.0


def quality_drop(
    baseline: ScoreSummary,
    current: Sequence[float],
    *,
    max_drop: float = 0.10,
    confidence: float = 0.95,
    min_samples: int = 30,
) -> DropVerdict:
    """Has quality dropped more than ``max_drop`` versus ``baseline``, at ``confidence``?"""
    n = len(current)
    if n < min_samples:
        return DropVerdict(
            False, None, None, n, None, f"insufficient data: {n} < {min_samples} scores"
        )
    if baseline.mean == 0:
        return DropVerdict(False, None, None, n, None, "baseline mean is 0: no relative drop")
    summary = summarize(current, confidence)
    drop = 1.0 - summary.mean / baseline.mean
    if summary.std == 0 and baseline.std == 0:
        p_value = 0.0 if summary.mean < baseline.mean else 1.0
    else:
        result = stats.ttest_ind_from_stats(
            summary.mean,
            summary.std,
            summary.n,
            baseline.mean,
            baseline.std,
            max(baseline.n, 2),
            equal_var=False,
            alternative="less",
        )
        p_value = float(result.pvalue)
    flagged = drop > max_drop and p_value < 1 - confidence
    return DropVerdict(flagged, drop, p_value, n, summary)
