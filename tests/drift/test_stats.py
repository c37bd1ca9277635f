"""Drift statistics: Evidently's test choice, edge cases, ranges, and seeded simulations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from sidecar.drift.features import dataset_drift, share_drifted
from sidecar.drift.stats import (
    DriftOptions,
    categorical_drift,
    numerical_drift,
    psi,
    psi_from_shares,
)
from sidecar.records import FeatureDrift

MAX_JS_DISTANCE = math.sqrt(math.log(2))  # natural log, as Evidently (and scipy by default)
SIMULATIONS = 200
LARGE = 5000  # a reference this big takes the distance (Wasserstein / Jensen-Shannon) path

maybe_numbers = st.lists(
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), max_size=80
)
labels = st.lists(st.one_of(st.none(), st.sampled_from("abcdefg")), max_size=80)


def prompt_lengths(seed: int, n: int, scale: float = 1.0) -> list[float]:
    """Token counts of prompts: lognormal around e^6 ~ 400 tokens, rounded like real counts."""
    rng = np.random.default_rng(seed)
    return np.rint(rng.lognormal(6.0, 0.5, n) * scale).tolist()


def templates(seed: int, n: int, new_share: float = 0.0) -> list[str | None]:
    """System prompt hashes: two templates 60/40, and a new one taking ``new_share``."""
    rng = np.random.default_rng(seed)
    old = rng.choice(["a1b2c3", "d4e5f6"], n, p=[0.6, 0.4]).tolist()
    return [("0new0template" if rng.random() < new_share else hash_) for hash_ in old]


def not_above_five_percent(false_alarms: int, runs: int) -> bool:
    """The false-alarm count is consistent with a 5 % test (binomial, one-sided, at 1 %)."""
    return bool(stats.binomtest(false_alarms, runs, 0.05, alternative="greater").pvalue > 0.01)


# --- property tests -------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(maybe_numbers, maybe_numbers)
def test_numerical_drift_never_raises_and_stays_in_range(reference, current) -> None:  # type: ignore[no-untyped-def]
    result = numerical_drift("x", reference, current, options=DriftOptions(min_samples=3))
    assert result.n_ref + result.reference_summary["dropped"] == len(reference)
    assert (result.drifted is None) == (result.value is None)
    assert (result.drifted is None) <= (result.reason is not None)
    if result.value is not None:
        if result.statistic in ("ks", "chi2"):
            assert 0.0 <= result.value <= 1.0
        else:
            assert result.value >= 0.0
    if result.psi is not None:
        assert result.psi >= 0.0
    json.dumps(result.as_json(), allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(labels, labels)
def test_categorical_drift_never_raises_and_stays_in_range(reference, current) -> None:  # type: ignore[no-untyped-def]
    result = categorical_drift("c", reference, current, options=DriftOptions(min_samples=3))
    assert (result.n_ref, result.n_cur) == (len(reference), len(current))
    if result.value is not None:
        assert 0.0 <= result.value <= 1.0
        assert result.psi is not None
        assert result.psi >= 0.0
    mirrored = categorical_drift("c", current, reference, options=DriftOptions(min_samples=3))
    if result.value is not None and mirrored.value is not None:
        assert result.value == pytest.approx(mirrored.value)  # homogeneity is symmetric


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=30, max_size=80))
def test_identical_windows_never_drift(values) -> None:  # type: ignore[no-untyped-def]
    assert numerical_drift("x", values, values).drifted is False
    assert (
        numerical_drift("x", values, values, options=DriftOptions(small_reference_max=0)).drifted
        is False
    )
    words = [str(round(value) % 7) for value in values]
    assert categorical_drift("c", words, words).drifted is False
    assert (
        categorical_drift("c", words, words, options=DriftOptions(small_reference_max=0)).drifted
        is False
    )


@settings(max_examples=100, deadline=None)
@given(
    st.integers(2, 12).flatmap(
        lambda bins: st.lists(st.floats(0, 1), min_size=2 * bins, max_size=2 * bins)
    )
)
def test_psi_is_non_negative_and_symmetric_on_shares(shares) -> None:  # type: ignore[no-untyped-def]
    ref, cur = np.asarray(shares[: len(shares) // 2]), np.asarray(shares[len(shares) // 2 :])
    value = psi_from_shares(ref, cur)
    assert value >= 0.0
    assert value == pytest.approx(psi_from_shares(cur, ref))


@settings(max_examples=100, deadline=None)
@given(maybe_numbers, maybe_numbers)
def test_psi_of_numbers_is_non_negative_or_none(reference, current) -> None:  # type: ignore[no-untyped-def]
    value = psi(reference, current)
    assert value is None or value >= 0.0


# --- cross-checks against scipy and the reference ------------------------------------------


def test_small_reference_uses_ks_p_value_from_scipy() -> None:
    ref, cur = prompt_lengths(1, 400), prompt_lengths(2, 300, 1.05)
    result = numerical_drift("prompt_tokens", ref, cur)
    expected = stats.ks_2samp(ref, cur).pvalue
    assert (result.statistic, result.threshold) == ("ks", 0.05)
    assert result.value == pytest.approx(expected)
    assert result.drifted == (expected <= 0.05)


def test_large_reference_uses_wasserstein_normed_by_reference_std() -> None:
    ref, cur = prompt_lengths(3, LARGE), prompt_lengths(4, 2000, 1.05)
    result = numerical_drift("prompt_tokens", ref, cur)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert (result.statistic, result.threshold) == ("wasserstein", 0.1)
    assert result.value == pytest.approx(expected)
    assert result.drifted == (expected >= 0.1)


def test_chi_square_is_the_two_sample_homogeneity_test() -> None:
    ref = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    cur = ["a"] * 35 + ["b"] * 40 + ["c"] * 25
    result = categorical_drift("finish_reason", ref, cur)
    table = [[50, 30, 20], [35, 40, 25]]
    assert result.statistic == "chi2"
    assert result.value == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)


def test_two_categories_give_evidentlys_two_proportion_z_test() -> None:
    ref, cur = ["stop"] * 70 + ["length"] * 30, ["stop"] * 55 + ["length"] * 45
    p1, p2, n1, n2 = 0.7, 0.55, 100, 100
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert categorical_drift("f", ref, cur).value == pytest.approx(2 * stats.norm.sf(abs(z)))


def test_large_reference_uses_jensen_shannon_distance_of_shares() -> None:
    ref = ["a"] * 3000 + ["b"] * 2000
    cur = ["a"] * 1000 + ["b"] * 1500 + ["c"] * 500
    result = categorical_drift("c", ref, cur)
    assert (result.statistic, result.threshold) == ("jensenshannon", 0.1)
    assert result.value == pytest.approx(jensenshannon([0.6, 0.4, 0.0], [1 / 3, 0.5, 1 / 6]))


def test_psi_matches_the_worked_examples_of_the_reference() -> None:
    quarters = np.full(4, 0.25)
    assert psi_from_shares(quarters, np.array([0.1, 0.2, 0.3, 0.4])) == pytest.approx(
        0.2282, abs=1e-4
    )
    with_empty_bin = np.array([0.0, 0.3, 0.3, 0.4])
    assert psi_from_shares(quarters, with_empty_bin) == pytest.approx(2.044, abs=1e-3)
    assert psi_from_shares(quarters, with_empty_bin, epsilon=1e-6) == pytest.approx(3.196, abs=1e-3)


def test_psi_bins_at_reference_deciles_and_catches_values_outside_them() -> None:
    reference = list(range(1000))
    assert psi(reference, reference) == 0.0
    assert psi(reference, list(range(100))) == pytest.approx(
        psi_from_shares(np.full(10, 0.1), np.array([1.0] + [0.0] * 9))
    )
    assert psi(reference, [5000.0] * 10) == psi(reference, [1e9] * 10)  # the open top bin


def test_few_distinct_numbers_are_tested_as_categories() -> None:
    ref = [1, 2, 3] * 20
    result = numerical_drift("message_count", ref, [1, 2, 3, 3, 3, 3] * 10)
    assert (result.kind, result.statistic) == ("numerical", "chi2")
    assert result.value == pytest.approx(
        stats.chi2_contingency([[20, 20, 20], [10, 10, 40]], correction=False).pvalue
    )
    assert result.drifted is True
    assert {mover[0] for mover in result.top_movers} == {"1", "2", "3"}


# --- edge cases ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "current", "reason"),
    [
        ([], [], "both windows are empty"),
        ([], [1.0] * 40, "reference window is empty"),
        ([1.0] * 40, [None, math.nan], "current window is empty"),
        (
            [float(value) for value in range(12)],
            [1.0, 2.0, 3.0, math.inf],
            "insufficient data: 12 reference and 3 current samples, need 30",
        ),
    ],
)
def test_windows_that_cannot_be_compared_get_no_verdict_and_a_reason(
    reference: list[float | None], current: list[float | None], reason: str
) -> None:
    result = numerical_drift("latency_ms", reference, current)
    assert (result.value, result.drifted, result.reason) == (None, None, reason)
    assert categorical_drift("c", ["x"] * len(reference), ["x"] * 3).drifted is None


def test_dropped_values_are_counted_in_the_summaries() -> None:
    result = numerical_drift("ttft_ms", [1.0, None, math.nan, math.inf] * 20, [2.0, None] * 40)
    assert result.reference_summary["dropped"] == 60
    assert result.current_summary["dropped"] == 40
    assert result.current_summary["count"] == 40
    assert result.current_summary["mean"] == 2.0


def test_a_constant_feature_in_both_windows_does_not_drift() -> None:
    result = numerical_drift("message_count", [2] * 50, [2] * 60)
    assert (result.drifted, result.reason) == (False, "constant feature in both windows")
    assert result.psi == 0.0
    big = numerical_drift("m", [2] * LARGE, [2] * 60)
    assert (big.statistic, big.value, big.drifted) == ("jensenshannon", 0.0, False)


def test_a_constant_reference_and_a_varying_current_window_drift_without_dividing_by_zero() -> None:
    varying = list(range(100, 200))
    small = numerical_drift("prompt_tokens", [100.0] * 200, varying)
    assert (small.statistic, small.drifted) == ("ks", True)
    large = numerical_drift("prompt_tokens", [100.0] * LARGE, varying)
    assert large.statistic == "wasserstein"
    assert large.value == pytest.approx(stats.wasserstein_distance([100.0], varying) / 0.001)
    assert large.drifted is True


def test_huge_values_give_no_verdict_rather_than_an_error() -> None:
    result = numerical_drift("x", [1e308, -1e308] * 3000, [1e308] * 40)
    assert result.drifted is None or result.value is not None
    json.dumps(result.as_json(), allow_nan=False)


def test_none_is_a_category_and_a_feature_that_stops_being_set_drifts() -> None:
    result = categorical_drift("schema_verdict", ["valid"] * 100, [None] * 50 + ["valid"] * 50)
    assert result.drifted is True
    assert result.current_summary == {"(none)": 0.5, "valid": 0.5}
    assert result.top_movers[0] == ("(none)", 0.0, 0.5)


def test_categories_unique_to_each_request_are_merged_and_do_not_drift() -> None:
    per_user = categorical_drift(
        "system_prompt_hash", [f"ref{i}" for i in range(300)], [f"cur{i}" for i in range(300)]
    )
    assert per_user.drifted is False
    assert per_user.reason is not None
    assert per_user.reason.startswith("every category seen < 5 times")


def test_feature_drift_round_trips_through_json() -> None:
    result = categorical_drift("c", ["a"] * 40 + ["b"] * 10, ["a"] * 20 + ["b"] * 30)
    stored = json.loads(json.dumps(result.as_json()))
    assert FeatureDrift.from_json(stored) == result
    assert FeatureDrift.from_json({**stored, "added_later": 1}) == result


# --- seeded simulations --------------------------------------------------------------------


def test_a_twenty_percent_longer_prompt_is_detected_at_n_1000() -> None:
    for seed in range(20):
        result = numerical_drift(
            "prompt_tokens", prompt_lengths(seed, 1000), prompt_lengths(seed + 1000, 1000, 1.2)
        )
        assert (result.statistic, result.drifted) == ("ks", True)
        large = numerical_drift(
            "prompt_tokens", prompt_lengths(seed, LARGE), prompt_lengths(seed + 1000, 1000, 1.2)
        )
        assert (large.statistic, large.drifted) == ("wasserstein", True)
        assert large.psi is not None
        assert large.psi > 0.05  # informational: a 20 % scale change sits near PSI's 0.1 band


def test_identical_distributions_rarely_flag_on_the_ks_path() -> None:
    false_alarms = sum(
        bool(
            numerical_drift("p", prompt_lengths(s, 1000), prompt_lengths(s + 10_000, 1000)).drifted
        )
        for s in range(SIMULATIONS)
    )
    assert not_above_five_percent(false_alarms, SIMULATIONS), false_alarms


def test_identical_distributions_never_flag_on_the_wasserstein_path() -> None:
    results = [
        numerical_drift("p", prompt_lengths(s, LARGE), prompt_lengths(s + 10_000, LARGE))
        for s in range(SIMULATIONS)
    ]
    assert {result.statistic for result in results} == {"wasserstein"}
    assert sum(bool(result.drifted) for result in results) <= SIMULATIONS * 0.05


def test_a_new_system_prompt_taking_30_percent_of_traffic_is_detected() -> None:
    for seed in range(10):
        small = categorical_drift(
            "system_prompt_hash", templates(seed, 500), templates(seed + 99, 500, 0.3)
        )
        assert (small.statistic, small.drifted) == ("chi2", True)
        assert small.top_movers[0][:2] == ("0new0template", 0.0)
        large = categorical_drift(
            "system_prompt_hash", templates(seed, LARGE), templates(seed + 99, 2000, 0.3)
        )
        assert (large.statistic, large.drifted) == ("jensenshannon", True)


def test_identical_category_mixes_rarely_flag_unlike_a_goodness_of_fit_test() -> None:
    """Why chi-square is the homogeneity test: Evidently's goodness of fit against the reference
    shares treats a 200-request reference as exact and raises several times more false alarms."""
    homogeneity = goodness_of_fit = 0
    for seed in range(SIMULATIONS):
        ref, cur = templates(seed, 200), templates(seed + 7_000, 200)
        homogeneity += bool(categorical_drift("h", ref, cur).drifted)
        ref_counts = np.array([ref.count(name) for name in ("a1b2c3", "d4e5f6")])
        cur_counts = np.array([cur.count(name) for name in ("a1b2c3", "d4e5f6")])
        goodness_of_fit += stats.chisquare(cur_counts, ref_counts * 200 / 200).pvalue < 0.05
    assert not_above_five_percent(homogeneity, SIMULATIONS), homogeneity
    assert goodness_of_fit > 2 * max(homogeneity, 5)


# --- dataset level -------------------------------------------------------------------------


def test_share_drifted_counts_only_features_with_a_verdict() -> None:
    def result(drifted: bool | None) -> FeatureDrift:
        return FeatureDrift("f", "numerical", "ks", None, 0.05, drifted, 0, 0)

    results = [result(True), result(False), result(None), result(True)]
    assert share_drifted(results) == pytest.approx(2 / 3)
    summary = dataset_drift(results)
    assert (summary.features, summary.with_verdict, summary.drifted_features) == (4, 3, 2)
    assert summary.drifted is True
    assert share_drifted([result(None)]) == 0.0
    assert dataset_drift([result(None)]).drifted is None
    assert dataset_drift([result(True), result(False), result(False)]).drifted is False
