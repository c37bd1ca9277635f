"""Text: script and words per message, and drift between windows of word bags."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from sidecar.drift.stats import DriftOptions
from sidecar.drift.text import (
    _RANGES,
    MAX_TEXT_CHARS,
    classify_script,
    clip_text,
    read_text,
    text_drift,
    word_counts,
)
from sidecar.records import FeatureDrift

COMMON = [f"common{i}" for i in range(300)]
ZIPF = 1 / np.arange(1, len(COMMON) + 1) / sum(1 / np.arange(1, len(COMMON) + 1))
BILLING = ["billing", "invoice", "refund", "charge", "payment", "card", "receipt", "twice"]
LOGIN = ["password", "login", "reset", "account", "locked", "email", "code", "signin"]


def bags(seed: int, n: int, login_share: float = 0.0) -> list[dict[str, int]]:
    """Word bags of support requests: Zipf-distributed filler plus a few topic words."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = rng.choice(COMMON, rng.integers(5, 25), p=ZIPF).tolist()
        topic = LOGIN if rng.random() < login_share else BILLING
        out.append(dict(Counter(words + rng.choice(topic, rng.integers(1, 5)).tolist())))
    return out


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("Please refund my invoice", "latin"),
        ("Ça coûte très cher, señor", "latin"),
        ("Здравствуйте, верните деньги", "cyrillic"),
        ("我的账单被重复扣款了", "cjk"),
        ("日本語のテキストです", "cjk"),
        ("안녕하세요 세계", "cjk"),
        ("مرحبا بالعالم", "arabic"),
        ("Γειά σου Κόσμε", "greek"),  # noqa: RUF001
        ("שלום עולם", "hebrew"),
        ("नमस्ते दुनिया", "devanagari"),
        ("สวัสดีชาวโลก", "other"),
        ("12345 !!! 😀 → ∑", "empty"),
        ("", "empty"),
        ("Привет! Refund please, my order 42 is wrong and late", "latin"),
        ("ok Здравствуйте дорогие друзья", "cyrillic"),
    ],
)
def test_script_is_the_writing_system_of_most_letters(text: str, script: str) -> None:
    assert classify_script(text) == script


def test_words_are_lowercased_runs_of_letters_and_each_cjk_ideograph() -> None:
    assert word_counts("Refund, REFUND! refund2 don't") == {"refund": 3, "don": 1, "t": 1}
    assert word_counts("Верните ДЕНЬГИ, деньги") == {"верните": 1, "деньги": 2}
    assert word_counts("退款退款 please") == {"please": 1, "退": 2, "款": 2}


def test_only_the_most_frequent_words_are_kept_first_seen_winning_ties() -> None:
    text = " ".join(f"w{chr(97 + i)}" for i in range(26)) + " wz wz wy"
    assert word_counts(text, limit=3) == {"wz": 3, "wy": 2, "wa": 1}
    many = " ".join(f"word{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(200))
    assert len(word_counts(many)) == 64


def test_long_text_keeps_its_head_and_tail() -> None:
    text = "a" * 3000 + "b" * 3000
    clipped = clip_text(text)
    assert len(clipped) == MAX_TEXT_CHARS + 1
    assert clipped.startswith("a" * 2000)
    assert clipped.endswith("b" * 2000)
    assert clip_text("short") == "short"


def test_the_code_point_table_is_sorted_and_without_overlaps() -> None:
    for (_, last, _), (first, _, _) in itertools.pairwise(_RANGES):
        assert last < first


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.integers(0, 70))
def test_reading_any_text_never_raises(text: str, limit: int) -> None:
    script, words = read_text(text, limit)
    assert script in {"latin", "cyrillic", "cjk", "arabic", "greek", "hebrew", "devanagari",
                      "other", "empty"}  # fmt: skip
    assert len(words) <= limit
    assert all(count > 0 and word and word in text.lower() for word, count in words.items())


# --- text drift ----------------------------------------------------------------------------


def test_a_topic_switch_is_detected_and_its_words_lead_the_movers() -> None:
    result = text_drift(
        "user_words", bags(1, 300), bags(2, 300, login_share=0.6), rng=np.random.default_rng(0)
    )
    assert (result.kind, result.statistic, result.drifted) == ("text", "jensenshannon", True)
    gained = [word for word, ref, cur in result.top_movers if cur > ref]
    lost = [word for word, ref, cur in result.top_movers if cur < ref]
    assert len(gained) >= 3
    assert set(gained[:3]) <= set(LOGIN)  # the new topic's words rose from nothing
    assert all(ref == 0.0 for word, ref, _ in result.top_movers if word in LOGIN)
    assert set(lost[:3]) <= set(BILLING)


def test_the_value_is_scipys_jensen_shannon_distance_of_the_pooled_counts() -> None:
    reference, current = bags(3, 100), bags(4, 80, login_share=0.3)
    pooled_ref, pooled_cur = Counter[str](), Counter[str]()
    for bag in reference:
        pooled_ref.update(bag)
    for bag in current:
        pooled_cur.update(bag)
    words = sorted(pooled_ref.keys() | pooled_cur.keys())
    expected = jensenshannon([pooled_ref[w] for w in words], [pooled_cur[w] for w in words])
    result = text_drift("user_words", reference, current)
    assert result.value == pytest.approx(expected)
    assert text_drift("user_words", current, reference).value == pytest.approx(expected)


def test_identical_windows_do_not_drift() -> None:
    window = bags(5, 100)
    result = text_drift("user_words", window, window)
    assert (result.value, result.drifted) == (0.0, False)


def test_same_traffic_in_small_windows_rarely_flags_thanks_to_the_noise_floor() -> None:
    runs = 40
    results = [
        text_drift("w", bags(seed, 100), bags(seed + 500, 100), rng=np.random.default_rng(seed))
        for seed in range(runs)
    ]
    assert min(result.value or 0.0 for result in results) > 0.1  # the fixed threshold would fire
    assert all(result.threshold > 0.1 for result in results)
    assert all((result.reason or "").startswith("threshold raised from 0.1") for result in results)
    false_alarms = sum(bool(result.drifted) for result in results)
    assert stats.binomtest(false_alarms, runs, 0.05, alternative="greater").pvalue > 0.01


def test_the_noise_floor_is_repeatable() -> None:
    reference, current = bags(6, 60), bags(7, 60)
    assert text_drift("w", reference, current) == text_drift("w", reference, current)
    seeded = [
        text_drift("w", reference, current, rng=np.random.default_rng(9)).threshold
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1]
    fixed = text_drift("w", reference, current, permutations=0)
    assert (fixed.threshold, fixed.reason) == (0.1, None)


def test_requests_without_words_are_left_out_and_junk_is_ignored() -> None:
    junk: list[object] = [None, {}, "text", {"ok": 0, "neg": -3, 5: 2, "bool": True}, [1, 2]]
    reference = bags(8, 40) + junk
    current = [*bags(9, 40), {"huge": 10**400}]
    result = text_drift("w", reference, current)  # type: ignore[arg-type]
    assert (result.n_ref, result.n_cur) == (40, 41)
    assert result.value is not None
    json.dumps(result.as_json(), allow_nan=False)


@pytest.mark.parametrize(
    ("reference", "current", "reason"),
    [
        ([], [], "both windows are empty"),
        ([None] * 50, [{"a": 1}] * 50, "reference window is empty"),
        ([{"a": 1}] * 10, [{"a": 1}] * 3, "insufficient data: 10 reference and 3 current samples, need 30"),
    ],
)  # fmt: skip
def test_windows_without_enough_text_get_no_verdict(
    reference: list[dict[str, int] | None], current: list[dict[str, int] | None], reason: str
) -> None:
    result = text_drift("user_words", reference, current)
    assert (result.value, result.drifted, result.reason) == (None, None, reason)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.dictionaries(st.sampled_from("abcdefghij"), st.integers(1, 5)), max_size=40),
    st.lists(st.dictionaries(st.sampled_from("abcdefghij"), st.integers(1, 5)), max_size=40),
)
def test_text_drift_stays_in_range(reference, current) -> None:  # type: ignore[no-untyped-def]
    result = text_drift(
        "w", reference, current, options=DriftOptions(min_samples=2), permutations=20
    )
    if result.value is not None:
        assert 0.0 <= result.value <= 1.0
        assert result.threshold >= 0.1
    assert FeatureDrift.from_json(json.loads(json.dumps(result.as_json()))) == result
