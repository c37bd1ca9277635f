from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from sidecar.judge.quality import quality_drop, summarize
from sidecar.records import ScoreSummary

# A judge's overall score: the mean of 4 criteria scored 1-5.
BASELINE_P = np.array([0.02, 0.05, 0.15, 0.38, 0.40])
LEVELS = np.arange(1, 6)
BASELINE_MEAN = float(BASELINE_P @ LEVELS)


def dropped(p: np.ndarray, drop: float) -> np.ndarray:
    """``p`` mixed with mass at 1 so that the mean falls by ``drop`` (relative)."""
    mean = float(p @ LEVELS)
    weight = drop * mean / (mean - 1)
    return (1 - weight) * p + weight * np.eye(5)[0]


def scores(rng: np.random.Generator, p: np.ndarray, n: int) -> list[float]:
    return list(rng.choice(LEVELS, size=(n, 4), p=p).mean(axis=1))


def test_summary_interval_matches_scipy() -> None:
    data = [3.0, 4.0, 4.5, 5.0, 2.5, 4.0, 3.5]
    summary = summarize(data, 0.95)
    low, high = stats.t.interval(0.95, len(data) - 1, loc=np.mean(data), scale=stats.sem(data))
    assert summary.ci_low == pytest.approx(low)
    assert summary.ci_high == pytest.approx(high)


@given(st.lists(st.floats(1, 5), min_size=2, max_size=50))
def test_the_mean_lies_inside_its_interval(data: list[float]) -> None:
    summary = summarize(data)
    assert summary.ci_low - 1e-9 <= summary.mean <= summary.ci_high + 1e-9


def test_a_true_15_percent_drop_is_flagged_at_n_200() -> None:
    flagged = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        baseline = summarize(scores(rng, BASELINE_P, 200))
        current = scores(rng, dropped(BASELINE_P, 0.15), 200)
        flagged += quality_drop(baseline, current, max_drop=0.10).flagged
    assert flagged >= 95


def test_no_drop_is_flagged_in_fewer_than_5_percent_of_runs() -> None:
    flagged = 0
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        baseline = summarize(scores(rng, BASELINE_P, 200))
        flagged += quality_drop(baseline, scores(rng, BASELINE_P, 200)).flagged
    assert flagged < 10


def test_a_small_real_drop_is_significant_but_not_flagged() -> None:
    rng = np.random.default_rng(5)
    baseline = summarize(scores(rng, BASELINE_P, 2000))
    verdict = quality_drop(baseline, scores(rng, dropped(BASELINE_P, 0.05), 2000))
    assert verdict.p_value is not None
    assert verdict.p_value < 0.05
    assert not verdict.flagged
    assert 0 < verdict.significant_drop_pct < 10


def test_too_few_scores_give_no_verdict() -> None:
    baseline = ScoreSummary(200, 4.0, 0.5, 3.9, 4.1, 0.95)
    verdict = quality_drop(baseline, [1.0] * 10, min_samples=30)
    assert not verdict.flagged
    assert verdict.reason == "insufficient data: 10 < 30 scores"
    assert verdict.significant_drop_pct == 0.0


def test_constant_scores_compare_without_dividing_by_zero() -> None:
    baseline = ScoreSummary(100, 4.0, 0.0, 4.0, 4.0, 0.95)
    assert quality_drop(baseline, [3.0] * 40).flagged
    assert not quality_drop(baseline, [4.0] * 40).flagged
