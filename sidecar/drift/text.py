"""Text, cheaply: a message's script and bag of words per request, and drift between bags (pure).

The per-request half runs in the log writer for every row, so it is one vectorised pass over a
bounded slice of text and nothing else: no language model, no stop-word list. The window half compares the
aggregated word distributions with the Jensen-Shannon distance, the distance Evidently uses for
categories (threshold 0.1). Evidently's own text test is a domain classifier (TF-IDF + SGD,
ROC AUC > 0.55); that needs scikit-learn and the raw text, which a ``body_policy: none``
deployment never stores, while word counts are small enough to keep with every row.

A word distribution pooled from a few hundred requests is noisy: two windows drawn from the same
traffic can be 0.1 apart just from sampling. So the threshold is raised to the 95th percentile of
the distances between random re-splits of the same requests into two windows of the same sizes
(a permutation null, like the bootstrap percentile of Evidently's "perc" text and embedding
tests). With large windows that noise floor sits below 0.1 and the plain threshold applies.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.spatial.distance import jensenshannon

from sidecar.drift.stats import (
    DEFAULT_OPTIONS,
    DriftOptions,
    FloatArray,
    IntArray,
    finite_or_none,
    quiet_numerics,
    sample_problem,
)
from sidecar.records import FeatureDrift

Script = Literal[
    "latin", "cyrillic", "cjk", "arabic", "greek", "hebrew", "devanagari", "other", "empty"
]

MAX_TEXT_CHARS = 4000  # longer text: its first and last 2,000 characters (bounded cost per row)
WORD_LIMIT = 64  # most frequent words kept per request
NOISE_QUANTILE = 0.95
PERMUTATIONS = 100
PERMUTATION_SEED = 42  # Evidently's random_state for its text classifier; results repeat
MAX_DOCUMENTS = 20_000  # per window: a seeded sample past this (the distance barely moves)

# Every code point gets a class, by one numpy searchsorted over the table below: a few
# microseconds for a 1 kB message, where a regex costs ~30 ns a character in CPython.
_CLASSES: tuple[Script, ...] = (
    "empty", "latin", "cyrillic", "cjk", "arabic", "greek", "hebrew", "devanagari", "other"
)  # fmt: skip
NOT_LETTER, LATIN, CYRILLIC, CJK, ARABIC, GREEK, HEBREW, DEVANAGARI, OTHER_LETTER = range(9)
SINGLE = 9  # kana and CJK ideographs, written without spaces: each character is a word

# (first, last, class), sorted. In the gaps ASCII is not a letter, and any other code point is
# taken for a letter of a script not listed ("other").
_RANGES: tuple[tuple[int, int, int], ...] = (
    (0x0041, 0x005A, LATIN), (0x0061, 0x007A, LATIN),
    (0x0080, 0x00BF, NOT_LETTER),  # Latin-1 punctuation and symbols
    (0x00C0, 0x00D6, LATIN), (0x00D7, 0x00D7, NOT_LETTER), (0x00D8, 0x00F6, LATIN),
    (0x00F7, 0x00F7, NOT_LETTER), (0x00F8, 0x024F, LATIN),
    (0x0300, 0x036F, LATIN),  # combining accents (decomposed Latin text)
    (0x0370, 0x03FF, GREEK), (0x0400, 0x052F, CYRILLIC), (0x0590, 0x05FF, HEBREW),
    (0x0600, 0x065F, ARABIC), (0x0660, 0x066D, NOT_LETTER), (0x066E, 0x06FF, ARABIC),
    (0x0750, 0x077F, ARABIC), (0x08A0, 0x08FF, ARABIC),
    (0x0900, 0x0963, DEVANAGARI), (0x0964, 0x096F, NOT_LETTER), (0x0970, 0x097F, DEVANAGARI),
    (0x1100, 0x11FF, CJK),  # Hangul jamo
    (0x1E00, 0x1EFF, LATIN), (0x1F00, 0x1FFF, GREEK),
    (0x2000, 0x2BFF, NOT_LETTER),  # punctuation, symbols, arrows, maths, box drawing
    (0x3000, 0x303F, NOT_LETTER),  # CJK punctuation
    (0x3040, 0x30FF, SINGLE), (0x3130, 0x318F, CJK), (0x3400, 0x4DBF, SINGLE),
    (0x4E00, 0x9FFF, SINGLE), (0xAC00, 0xD7AF, CJK),  # Hangul syllables
    (0xD800, 0xF8FF, NOT_LETTER),  # surrogates, private use
    (0xF900, 0xFAFF, SINGLE), (0xFB50, 0xFDFF, ARABIC), (0xFE00, 0xFE6F, NOT_LETTER),
    (0xFE70, 0xFEFE, ARABIC), (0xFEFF, 0xFF20, NOT_LETTER), (0xFF21, 0xFF3A, LATIN),
    (0xFF3B, 0xFF40, NOT_LETTER), (0xFF41, 0xFF5A, LATIN), (0xFF5B, 0xFF65, NOT_LETTER),
    (0xFFF0, 0xFFFF, NOT_LETTER), (0x1F000, 0x1FAFF, NOT_LETTER),  # emoji
)  # fmt: skip


def _class_table() -> tuple[npt.NDArray[np.uint32], IntArray]:
    """Sorted range starts and the class from each start on (gaps: ASCII is not a letter, any
    other code point is a letter of some other script)."""
    starts, classes, position = [], [], 0
    for start, end, kind in _RANGES:
        if start > position:
            starts.append(position)
            classes.append(NOT_LETTER if position < 0x80 else OTHER_LETTER)
            if position < 0x80 < start:
                starts.append(0x80)
                classes.append(OTHER_LETTER)
        starts.append(start)
        classes.append(kind)
        position = end + 1
    starts.append(position)
    classes.append(OTHER_LETTER)
    return np.asarray(starts, dtype=np.uint32), np.asarray(classes, dtype=np.int64)


_STARTS, _START_CLASSES = _class_table()
_CLASS_AFTER = np.concatenate([[NOT_LETTER], _START_CLASSES])  # by searchsorted(side="right")
_ASCII_NOT_LETTERS = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalpha()})


def clip_text(text: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """The text itself, or its head and tail when longer than ``max_chars`` (the question of a
    long retrieval-augmented prompt is usually at the end, the instructions at the start)."""
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    return f"{text[:half]}\n{text[-half:]}"


def read_text(text: str, limit: int = WORD_LIMIT) -> tuple[Script, dict[str, int]]:
    """The script of ``text`` and its ``limit`` most frequent lowercased words with counts.

    The script is the writing system most letters belong to: ``empty`` without letters,
    ``other`` when letters outside the known scripts outnumber each known one. A word is a run
    of letters, or a single kana or CJK ideograph; ties in frequency keep the first seen.
    """
    lowered = text.lower()
    if lowered.isascii():
        words = lowered.translate(_ASCII_NOT_LETTERS).split()
        return ("latin" if words else "empty"), _most_frequent(words, limit)
    code_points = np.frombuffer(lowered.encode("utf-32-le", "replace"), dtype=np.uint32)
    classes = _CLASS_AFTER[np.searchsorted(_STARTS, code_points, side="right")]
    per_class = np.bincount(classes, minlength=SINGLE + 1).tolist()
    per_class_single = per_class.pop()
    per_class[CJK] += per_class_single
    best = max(range(1, OTHER_LETTER + 1), key=per_class.__getitem__)  # first wins ties
    script = _CLASSES[best] if per_class[best] else "empty"
    in_word = (classes > NOT_LETTER) & (classes < SINGLE)
    spaced = np.where(in_word, code_points, 32).astype(np.uint32).tobytes().decode("utf-32-le")
    words = spaced.split()
    if per_class_single:
        words += code_points[classes == SINGLE].tobytes().decode("utf-32-le")  # one per character
    return script, _most_frequent(words, limit)


def _most_frequent(words: list[str], limit: int) -> dict[str, int]:
    counts = Counter(words)
    if len(counts) <= limit:
        return dict(counts)
    return dict(sorted(counts.items(), key=itemgetter(1), reverse=True)[: max(limit, 0)])


def classify_script(text: str) -> Script:
    """The script part of :func:`read_text`."""
    return read_text(text, limit=0)[0]


def word_counts(text: str, limit: int = WORD_LIMIT) -> dict[str, int]:
    """The words part of :func:`read_text`."""
    return read_text(text, limit)[1]


def _usable(bag: object) -> list[tuple[str, int]]:
    """The (word, count) pairs of a stored bag that make sense; a count above the characters a
    clipped message can hold is capped there (junk must not overflow the arithmetic)."""
    if not isinstance(bag, Mapping):
        return []
    return [
        (word, min(count, MAX_TEXT_CHARS))
        for word, count in bag.items()
        if isinstance(word, str) and isinstance(count, int) and not isinstance(count, bool)
        if count > 0
    ]


def _top_shares(words: list[str], shares: FloatArray, top: int) -> dict[str, float]:
    order = np.argsort(-shares, kind="stable")[: max(top, 0)]
    return {words[i]: float(shares[i]) for i in order.tolist() if shares[i] > 0}


def text_drift(
    feature: str,
    reference_bags: Sequence[Mapping[str, int] | None],
    current_bags: Sequence[Mapping[str, int] | None],
    *,
    options: DriftOptions = DEFAULT_OPTIONS,
    permutations: int = PERMUTATIONS,
    rng: np.random.Generator | None = None,
) -> FeatureDrift:
    """Jensen-Shannon distance between the windows' pooled word distributions.

    Requests without words (no stored body, no user message) are left out of ``n_ref`` and
    ``n_cur``. The verdict is ``value >= threshold`` where ``threshold`` is the larger of
    ``options.distance`` and the sampling-noise floor from ``permutations`` random re-splits
    (drawn from ``rng``; a fixed seed when None, so the same windows give the same answer).
    Summaries are the shares of the most frequent words; ``top_movers`` the words whose share
    changed most. A window of more than ``MAX_DOCUMENTS`` requests is sampled down to that many
    (seeded), so ``n_ref`` / ``n_cur`` count the sample.
    """
    reference_bags, current_bags = _capped(reference_bags), _capped(current_bags)
    vocabulary: dict[str, int] = {}
    documents: list[int] = []
    word_ids: list[int] = []
    counts: list[int] = []
    sizes: list[int] = []
    for bags in (reference_bags, current_bags):
        first = sum(sizes)  # documents are numbered across both windows, reference first
        size = 0
        for bag in bags:
            usable = _usable(bag)
            for word, count in usable:
                word_ids.append(vocabulary.setdefault(word, len(vocabulary)))
                documents.append(first + size)
                counts.append(count)
            size += bool(usable)
        sizes.append(size)
    n_ref, n_cur = sizes
    words = list(vocabulary)
    document = np.asarray(documents, dtype=np.int64)
    word_id = np.asarray(word_ids, dtype=np.int64)
    weight = np.asarray(counts, dtype=np.float64)
    in_current = document >= n_ref
    ref_totals = np.bincount(word_id[~in_current], weight[~in_current], minlength=len(words))
    cur_totals = np.bincount(word_id[in_current], weight[in_current], minlength=len(words))
    ref_shares = ref_totals / max(ref_totals.sum(), 1.0)
    cur_shares = cur_totals / max(cur_totals.sum(), 1.0)
    threshold, value, drifted = options.distance, None, None
    reason = sample_problem(n_ref, n_cur, options.min_samples)
    movers: tuple[tuple[str, float, float], ...] = ()
    if reason is None:
        with quiet_numerics():
            value = finite_or_none(float(jensenshannon(ref_totals, cur_totals)))
        noise = _noise_floor(document, word_id, weight, (n_ref, n_cur), permutations, rng)
        if noise > threshold:
            reason = (
                f"threshold raised from {threshold:g} to {noise:.4f}, the sampling noise: "
                f"{NOISE_QUANTILE:.0%} of {permutations} random re-splits of these requests"
            )
            threshold = noise
        drifted = None if value is None else value >= threshold
        change = np.abs(cur_shares - ref_shares)
        order = np.argsort(-change, kind="stable")[: max(options.top_movers, 0)]
        movers = tuple(
            (words[i], float(ref_shares[i]), float(cur_shares[i])) for i in order.tolist()
        )
    return FeatureDrift(
        feature=feature,
        kind="text",
        statistic="jensenshannon",
        value=value,
        threshold=threshold,
        drifted=drifted,
        n_ref=n_ref,
        n_cur=n_cur,
        reason=reason,
        reference_summary=_top_shares(words, ref_shares, options.top_movers),
        current_summary=_top_shares(words, cur_shares, options.top_movers),
        top_movers=movers,
    )


def _capped(bags: Sequence[Mapping[str, int] | None]) -> Sequence[Mapping[str, int] | None]:
    """At most ``MAX_DOCUMENTS`` bags, a seeded random sample (bounded cost on big windows)."""
    if len(bags) <= MAX_DOCUMENTS:
        return bags
    picked = np.random.default_rng(PERMUTATION_SEED).choice(len(bags), MAX_DOCUMENTS, replace=False)
    return [bags[index] for index in sorted(picked.tolist())]


def _noise_floor(
    document: IntArray,
    word_id: IntArray,
    weight: FloatArray,
    sizes: tuple[int, int],
    permutations: int,
    rng: np.random.Generator | None,
) -> float:
    """The ``NOISE_QUANTILE`` of the distance between random request-level re-splits."""
    if permutations <= 0:
        return 0.0
    generator = rng if rng is not None else np.random.default_rng(PERMUTATION_SEED)
    n_ref, n_cur = sizes
    vocabulary_size = int(word_id.max()) + 1
    totals = np.bincount(word_id, weight, minlength=vocabulary_size)
    distances = np.empty(permutations)
    with quiet_numerics():
        for index in range(permutations):
            in_current = np.zeros(n_ref + n_cur, dtype=bool)
            in_current[generator.permutation(n_ref + n_cur)[:n_cur]] = True
            picked = in_current[document]
            current = np.bincount(word_id[picked], weight[picked], minlength=vocabulary_size)
            distances[index] = jensenshannon(totals - current, current)
    return float(np.nan_to_num(np.quantile(distances, NOISE_QUANTILE)))
