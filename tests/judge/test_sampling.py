from __future__ import annotations

import dataclasses
import random
import statistics

from sidecar.judge.sampling import Sampler, SamplingRule, sampling_policy
from sidecar.records import UNBIASED_REASONS, SampleReason, ScopeMatch
from sidecar.testing.factories import logged_request as make_row

ROW = make_row(schema_verdict="valid")


def sampler(rate: float = 0.05, *, floor: int = 0, always: tuple[str, ...] = (),
            rules: tuple[SamplingRule, ...] = (), seed: int = 7) -> Sampler:  # fmt: skip
    policy = sampling_policy(rules, rate, min_per_window=floor, window_s=3600, always=always)
    return Sampler(policy, random.Random(seed))


def test_random_sample_rate_matches_the_configured_rate() -> None:
    chosen = sampler(0.05)
    picked = sum(chosen.decide(ROW, 0.0) == SampleReason.RANDOM for _ in range(20_000))
    # Binomial(20000, 0.05): mean 1000, sd ~31; 5 sd either side.
    assert 845 < picked < 1155


def test_quiet_strata_still_get_their_floor_each_window() -> None:
    chosen = sampler(0.0001, floor=3)
    quiet = dataclasses.replace(ROW, adapter="rare-adapter", model="rare-adapter")
    first = [chosen.decide(quiet, 10.0) for _ in range(10)]
    assert first[:3] == [SampleReason.FLOOR] * 3
    assert set(first[3:]) == {None}
    # The next window starts over.
    assert chosen.decide(quiet, 3600.0 + 10.0) == SampleReason.FLOOR


def test_a_zero_rate_rule_samples_nothing_not_even_the_floor() -> None:
    off = SamplingRule("off", 0.0, ScopeMatch(adapter="private-adapter"))
    chosen = sampler(1.0, floor=5, rules=(off,))
    private = dataclasses.replace(ROW, adapter="private-adapter")
    assert all(chosen.decide(private, 0.0) is None for _ in range(50))
    assert chosen.decide(ROW, 0.0) == SampleReason.RANDOM


def test_hard_cases_are_sampled_apart_from_the_quality_sample() -> None:
    chosen = sampler(0.0, always=(SampleReason.SCHEMA_INVALID, SampleReason.ERROR))
    invalid = dataclasses.replace(ROW, schema_verdict="invalid")
    cut = dataclasses.replace(ROW, finish_reason="length")
    failed = dataclasses.replace(ROW, status=502, error_kind="upstream_unreachable")
    assert chosen.decide(invalid, 0.0) == SampleReason.SCHEMA_INVALID
    assert chosen.decide(cut, 0.0) == SampleReason.ERROR
    assert chosen.decide(failed, 0.0) == SampleReason.ERROR
    assert chosen.decide(ROW, 0.0) is None
    assert SampleReason.SCHEMA_INVALID not in UNBIASED_REASONS


def test_failed_requests_are_not_sampled_unless_asked() -> None:
    chosen = sampler(1.0)
    assert chosen.decide(dataclasses.replace(ROW, status=500), 0.0) is None


def test_only_completion_endpoints_are_sampled() -> None:
    chosen = sampler(1.0, floor=5)
    assert chosen.decide(dataclasses.replace(ROW, path="/v1/models", method="GET"), 0.0) is None
    assert chosen.decide(dataclasses.replace(ROW, path="/v1/completions"), 0.0) is not None


def test_a_paused_sampler_samples_nothing() -> None:
    chosen = sampler(1.0, floor=5, always=(SampleReason.SCHEMA_INVALID,))
    chosen.paused = True
    assert chosen.decide(dataclasses.replace(ROW, schema_verdict="invalid"), 0.0) is None


def test_the_quality_sample_is_unbiased_while_hard_cases_are_not() -> None:
    """Seeded simulation: invalid outputs score low. The random + floor sample's mean matches the
    population's; mixing in the always-sampled hard cases would drag it down."""
    rng = random.Random(42)
    chosen = sampler(0.05, floor=5, always=(SampleReason.SCHEMA_INVALID,), seed=1)
    population: list[float] = []
    unbiased: list[float] = []
    everything: list[float] = []
    for index in range(40_000):
        invalid = rng.random() < 0.1
        quality = rng.gauss(2.0 if invalid else 4.0, 0.5)
        row = dataclasses.replace(
            ROW, schema_verdict="invalid" if invalid else "valid",
            adapter=f"adapter-{index % 4}",
        )  # fmt: skip
        reason = chosen.decide(row, index * 0.5)
        population.append(quality)
        if reason is not None:
            everything.append(quality)
        if reason in UNBIASED_REASONS:
            unbiased.append(quality)
    truth = statistics.fmean(population)
    standard_error = statistics.stdev(unbiased) / len(unbiased) ** 0.5
    assert abs(statistics.fmean(unbiased) - truth) < 3 * standard_error
    assert statistics.fmean(everything) < truth - 10 * standard_error
