"""Drift in embedding space: a permutation test on the MMD between two windows of vectors (pure).

The statistic is the (biased) squared maximum mean discrepancy with a Gaussian kernel whose
bandwidth is the median heuristic (``k(a, b) = exp(-|a - b|^2 / median |z_i - z_j|^2)`` over
the pooled sample). Its null distribution comes from re-splitting the pooled vectors at
random into windows of the same sizes (``permutations`` times), so the p-value
``(1 + #{permuted >= observed}) / (1 + permutations)`` holds its level whatever the kernel,
the dimension or the window sizes: same-distribution windows flag at ``p_value`` (5 %).
A bootstrap that resamples only the reference would not (eth-easl/modyn#414).

Cost is bounded: each window is sampled down to ``max_samples`` vectors (seeded), so the
kernel matrix is at most ``(2 * max_samples)^2`` and all permutations are one matrix product.

What moved: the MMD witness function ``mean k(x, current) - mean k(x, reference)`` is large
where the current window has more mass than the reference. The current vectors with the
largest witness, skipping near-duplicates of one already chosen (cosine >= 0.95, so each
example stands for a different cluster), are the examples a human should read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sidecar.drift.stats import DEFAULT_OPTIONS, DriftOptions, quiet_numerics, sample_problem
from sidecar.records import FeatureDrift

Vectors = npt.NDArray[np.float64]
PERMUTATIONS = 200
MAX_SAMPLES = 500  # per window
MOVED_EXAMPLES = 5
DUPLICATE_COSINE = 0.95
PERMUTATION_SEED = 42


@dataclass(frozen=True, slots=True)
class MovedExample:
    """A current-window vector that sits where the reference has little mass.

    ``index`` points into the current window as given; ``reference_similarity`` and
    ``current_similarity`` are its mean kernel value against each window (0..1).
    """

    index: int
    reference_similarity: float
    current_similarity: float


@dataclass(frozen=True, slots=True)
class EmbeddingDrift:
    result: FeatureDrift
    moved: tuple[MovedExample, ...]


def _stack(vectors: Sequence[npt.NDArray[np.floating] | None]) -> tuple[Vectors, list[int]]:
    """The usable vectors (finite, one dimension shared by the first) and their positions."""
    kept: list[npt.NDArray[np.floating]] = []
    positions: list[int] = []
    dim = None
    for position, vector in enumerate(vectors):
        if vector is None or vector.ndim != 1 or not np.all(np.isfinite(vector)):
            continue
        dim = vector.shape[0] if dim is None else dim
        if vector.shape[0] == dim:
            kept.append(vector)
            positions.append(position)
    if not kept:
        return np.empty((0, 0)), []
    return np.asarray(kept, dtype=np.float64), positions


def _sample(size: int, limit: int, rng: np.random.Generator) -> npt.NDArray[np.intp]:
    if size <= limit:
        return np.arange(size)
    return np.sort(rng.choice(size, limit, replace=False))


def _kernel(pooled: Vectors) -> tuple[Vectors, float]:
    """The Gaussian kernel matrix at the median heuristic, and that bandwidth (squared)."""
    norms = np.einsum("ij,ij->i", pooled, pooled)
    squared = np.maximum(norms[:, None] + norms[None, :] - 2.0 * (pooled @ pooled.T), 0.0)
    off_diagonal = squared[~np.eye(len(pooled), dtype=bool)]
    bandwidth = float(np.median(off_diagonal)) if off_diagonal.size else 0.0
    if not bandwidth > 0:  # most pairs identical: fall back to the mean
        bandwidth = float(np.mean(off_diagonal)) if off_diagonal.size else 0.0
    if not bandwidth > 0:
        return np.ones_like(squared), 0.0
    return np.exp(-squared / bandwidth), bandwidth


def mmd_permutation_test(
    reference: Vectors, current: Vectors, *, permutations: int, rng: np.random.Generator
) -> tuple[float, float, float, Vectors]:
    """(MMD^2, p-value, bandwidth^2, kernel matrix) for two samples of vectors."""
    n_ref, n_cur = len(reference), len(current)
    kernel, bandwidth = _kernel(np.vstack([reference, current]))
    weights = np.concatenate([np.full(n_ref, 1.0 / n_ref), np.full(n_cur, -1.0 / n_cur)])
    observed = float(weights @ kernel @ weights)
    if permutations <= 0:
        return observed, 1.0, bandwidth, kernel
    shuffled = np.stack([rng.permutation(weights) for _ in range(permutations)], axis=1)
    null = np.einsum("ij,ij->j", shuffled, kernel @ shuffled)
    exceed = int(np.count_nonzero(null >= observed - 1e-12 * max(abs(observed), 1.0)))
    return observed, (1 + exceed) / (1 + permutations), bandwidth, kernel


def _moved(
    kernel: Vectors, pooled: Vectors, n_ref: int, top: int
) -> list[tuple[int, float, float]]:
    """(position in the sampled current window, similarity to reference, to current)."""
    to_reference = kernel[n_ref:, :n_ref].mean(axis=1)
    to_current = kernel[n_ref:, n_ref:].mean(axis=1)
    witness = to_current - to_reference
    current = pooled[n_ref:]
    norms = np.linalg.norm(current, axis=1)
    unit = current / np.where(norms > 0, norms, 1.0)[:, None]
    chosen: list[int] = []
    for position in np.argsort(-witness, kind="stable").tolist():
        if len(chosen) >= top or witness[position] <= 0:
            break
        if chosen and float(np.max(unit[chosen] @ unit[position])) >= DUPLICATE_COSINE:
            continue
        chosen.append(position)
    return [(p, float(to_reference[p]), float(to_current[p])) for p in chosen]


def embedding_drift(
    feature: str,
    reference: Sequence[npt.NDArray[np.floating] | None],
    current: Sequence[npt.NDArray[np.floating] | None],
    *,
    options: DriftOptions = DEFAULT_OPTIONS,
    permutations: int = PERMUTATIONS,
    max_samples: int = MAX_SAMPLES,
    moved_examples: int = MOVED_EXAMPLES,
    missing_reason: str | None = None,
    rng: np.random.Generator | None = None,
) -> EmbeddingDrift:
    """The MMD permutation test between two windows of vectors (None entries are left out).

    ``value`` is the permutation p-value; drift when it is below ``options.p_value``. The
    summaries hold the sample size, MMD^2, the bandwidth and the cosine distance between the
    window centroids (Phoenix's "embedding drift"). ``missing_reason`` replaces the generic
    "insufficient data" reason (e.g. bodies are not stored, so nothing was embedded).
    """
    generator = rng if rng is not None else np.random.default_rng(PERMUTATION_SEED)
    ref_all, _ = _stack(reference)
    cur_all, cur_positions = _stack(current)
    if ref_all.size and cur_all.size and ref_all.shape[1] != cur_all.shape[1]:
        cur_all, cur_positions = np.empty((0, 0)), []
    problem = sample_problem(len(ref_all), len(cur_all), options.min_samples)
    if problem is not None:
        return EmbeddingDrift(
            FeatureDrift(feature=feature, kind="embedding", statistic="mmd", value=None,
                         threshold=options.p_value, drifted=None, n_ref=len(ref_all),
                         n_cur=len(cur_all), reason=missing_reason or problem),
            (),
        )  # fmt: skip
    ref_pick = _sample(len(ref_all), max_samples, generator)
    cur_pick = _sample(len(cur_all), max_samples, generator)
    ref, cur = ref_all[ref_pick], cur_all[cur_pick]
    with quiet_numerics():
        mmd2, p_value, bandwidth, kernel = mmd_permutation_test(
            ref, cur, permutations=permutations, rng=generator
        )
        centroids = ref.mean(axis=0), cur.mean(axis=0)
        denominator = float(np.linalg.norm(centroids[0]) * np.linalg.norm(centroids[1]))
        cosine = float(centroids[0] @ centroids[1]) / denominator if denominator > 0 else 1.0
    moved = tuple(
        MovedExample(cur_positions[int(cur_pick[position])], to_ref, to_cur)
        for position, to_ref, to_cur in _moved(kernel, np.vstack([ref, cur]), len(ref),
                                               moved_examples)
    )  # fmt: skip
    note = None
    if len(ref_all) > len(ref) or len(cur_all) > len(cur):
        note = f"tested on a seeded sample of {len(ref)} reference and {len(cur)} current vectors"

    def summary(size: int, sampled: int) -> dict[str, float]:
        return {"count": float(size), "sampled": float(sampled), "mmd2": mmd2,
                "bandwidth2": bandwidth, "centroid_cosine_distance": 1.0 - cosine}  # fmt: skip

    result = FeatureDrift(
        feature=feature, kind="embedding", statistic="mmd", value=p_value,
        threshold=options.p_value, drifted=p_value < options.p_value, n_ref=len(ref_all),
        n_cur=len(cur_all), reason=note, reference_summary=summary(len(ref_all), len(ref)),
        current_summary=summary(len(cur_all), len(cur)),
    )  # fmt: skip
    return EmbeddingDrift(result, moved)
