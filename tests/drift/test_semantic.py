"""The MMD permutation test in embedding space: its false-alarm rate, its power on a topic
change that the word test misses, a style change in outputs, and the examples it shows."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
from scipy import stats

from sidecar.drift.embeddings import load_embedder, pack, unpack
from sidecar.drift.semantic import embedding_drift, mmd_permutation_test
from sidecar.drift.stats import DriftOptions
from sidecar.drift.text import read_text, text_drift
from sidecar.testing.topics import MONEY_WIDE, TRAVEL_WIDE, carrier_question

SHIFT_N = 50  # requests per window in the topic-change simulations


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


MODELS = ["static", "minilm"]


@functools.cache
def stored_vector(model: str, text: str) -> np.ndarray | None:
    """The vector of ``text`` as the drift check reads it back (packed, unpacked); cached, as
    the simulations draw the same carrier questions again and again."""
    embedder = load_embedder(model)
    vector = embedder.embed(text)
    return None if vector is None else unpack(pack(vector, embedder.format), embedder.format)


def vectors(texts: list[str], model: str = "static") -> list[np.ndarray | None]:
    return [stored_vector(model, text) for text in texts]


def test_same_distribution_windows_flag_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(7)
    runs, false_alarms = 100, 0
    for _ in range(runs):
        centres = rng.normal(size=(4, 16))

        def window(n: int, centres: np.ndarray = centres) -> list[np.ndarray]:
            picked = centres[rng.integers(0, len(centres), n)]
            return list(unit(picked + rng.normal(size=(n, 16))))

        result = embedding_drift("x", window(40), window(40), permutations=99, rng=rng).result
        false_alarms += bool(result.drifted)
    assert stats.binomtest(false_alarms, runs, 0.05, alternative="greater").pvalue > 0.01, (
        false_alarms
    )


@pytest.mark.parametrize("model", MODELS)
def test_same_topic_prompts_flag_at_the_nominal_rate(model: str) -> None:
    runs, false_alarms = 100, 0
    for seed in range(runs):
        rng = random.Random(seed)
        one = [carrier_question(rng, MONEY_WIDE) for _ in range(40)]
        two = [carrier_question(rng, MONEY_WIDE) for _ in range(40)]
        found = embedding_drift("prompt_embedding", vectors(one, model), vectors(two, model), permutations=99,
                                rng=np.random.default_rng(seed))  # fmt: skip
        false_alarms += bool(found.result.drifted)
    assert stats.binomtest(false_alarms, runs, 0.05, alternative="greater").pvalue > 0.01, (
        false_alarms
    )


def test_the_p_value_is_a_permutation_p_value() -> None:
    rng = np.random.default_rng(1)
    same = unit(rng.normal(size=(30, 8)))
    _, p_value, _, _ = mmd_permutation_test(same, same.copy(), permutations=49, rng=rng)
    assert p_value == 1.0  # identical windows: every re-split is at least as far apart
    far = unit(rng.normal(size=(30, 8)) + 5)
    _, p_value, _, _ = mmd_permutation_test(same, far, permutations=49, rng=rng)
    assert p_value == pytest.approx(1 / 50)


def shifted_windows(seed: int, n: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    reference = [carrier_question(rng, MONEY_WIDE) for _ in range(n)]
    current = [carrier_question(rng, TRAVEL_WIDE) for _ in range(n)]
    return reference, current


@pytest.mark.parametrize("model", MODELS)
def test_a_topic_change_in_the_same_phrases_is_detected_where_words_mostly_miss_it(
    model: str,
) -> None:
    seeds = range(10)
    embedding_hits = word_hits = 0
    for seed in seeds:
        reference, current = shifted_windows(seed, SHIFT_N)
        found = embedding_drift("prompt_embedding", vectors(reference, model), vectors(current, model),
                                rng=np.random.default_rng(seed))  # fmt: skip
        embedding_hits += bool(found.result.drifted)
        words = text_drift("user_words", [read_text(text)[1] for text in reference],
                           [read_text(text)[1] for text in current],
                           rng=np.random.default_rng(seed))  # fmt: skip
        word_hits += bool(words.drifted)
    assert embedding_hits == len(seeds)
    assert word_hits <= len(seeds) // 2


def test_the_moved_examples_come_from_the_new_topic() -> None:
    reference, current = shifted_windows(3, SHIFT_N)
    found = embedding_drift("prompt_embedding", vectors(reference), vectors(current))
    assert found.result.drifted
    assert 1 <= len(found.moved) <= 5
    for moved in found.moved:
        assert any(word in current[moved.index].split() for word in TRAVEL_WIDE)
        assert moved.current_similarity > moved.reference_similarity
    assert len({current[moved.index] for moved in found.moved}) == len(found.moved)


@pytest.mark.parametrize("model", MODELS)
def test_a_style_change_in_outputs_is_detected(model: str) -> None:
    rng = random.Random(5)
    plain = ["the {} is ready and the details are in your account",
             "your {} has been updated as requested", "the {} was processed today"]  # fmt: skip
    chatty = ["oh wow, great news!!! your {} is totally sorted, you are going to love it :)",
              "yay! awesome, we fixed your {} super fast, thanks so much for being amazing!",
              "hey friend! good vibes only, your {} is done and it looks fantastic!"]  # fmt: skip
    before = [rng.choice(plain).format(rng.choice(MONEY_WIDE)) for _ in range(SHIFT_N)]
    after = [rng.choice(chatty).format(rng.choice(MONEY_WIDE)) for _ in range(SHIFT_N)]
    assert embedding_drift(
        "output_embedding", vectors(before, model), vectors(after, model)
    ).result.drifted


def test_too_few_vectors_give_no_verdict_with_the_reason_given() -> None:
    rng = np.random.default_rng(0)
    few = list(unit(rng.normal(size=(5, 8))))
    plenty = list(unit(rng.normal(size=(50, 8))))
    result = embedding_drift("prompt_embedding", plenty, few).result
    assert result.drifted is None
    assert "insufficient data" in (result.reason or "")
    why = "no embeddings: 50 of 50 requests were logged with request_log.bodies: none"
    bare = embedding_drift("prompt_embedding", [None] * 50, [None] * 50, missing_reason=why)
    assert bare.result.reason == why
    assert (bare.result.n_ref, bare.result.n_cur) == (0, 0)


def test_large_windows_are_sampled_to_a_bounded_size() -> None:
    rng = np.random.default_rng(2)
    big = list(unit(rng.normal(size=(1500, 8))))
    result = embedding_drift("x", big, big[:700], max_samples=200, permutations=19,
                             options=DriftOptions(), rng=rng).result  # fmt: skip
    assert (result.n_ref, result.n_cur) == (1500, 700)
    assert result.reference_summary["sampled"] == 200
    assert "seeded sample of 200 reference and 200 current" in (result.reason or "")
