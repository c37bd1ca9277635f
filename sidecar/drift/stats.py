"""Drift statistics between a reference window and a current window (pure).

The test choice follows Evidently's defaults (shared/reference/alerts-drift.md, part B1), so a
number here means what it means in Evidently's reports:

- reference window of at most 1,000 values: a p-value test at 0.05; Kolmogorov-Smirnov for
  numbers (drift when ``p <= 0.05``), chi-square for categories (drift when ``p < 0.05``);
- larger reference window: a distance at 0.1; Wasserstein distance divided by
  ``max(std(reference), 0.001)`` for numbers, Jensen-Shannon distance (natural log) for
  categories (drift when ``value >= 0.1``);
- a numerical feature with at most 5 distinct values in both windows together is tested as a
  categorical one, as Evidently does.

Deviations, each for a reason:

- Chi-square is the two-sample homogeneity test (``chi2_contingency`` on the 2 x k table of
  counts), not Evidently's goodness of fit against ``reference counts x n_cur / n_ref``. That
  form divides by zero for a category the reference never saw (a new system prompt) and treats
  the reference as exact, which flags far more than 5 % of equal windows when both are small.
  For two categories the p-value equals Evidently's two-proportion Z-test.
- Categories seen fewer than 5 times in both windows together, and any beyond the 20 most
  frequent, are merged into ``(other)`` before testing (the "other/unseen" bin of B3), so a
  system prompt that embeds a user name or a date does not make every window drift.

PSI goes beside every numerical and categorical result (B3/B4): bins at the reference deciles
for numbers, one per category otherwise, empty bins' shares replaced by 1e-4.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance

from sidecar.records import FeatureDrift, Kind

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MAX_UNIQUE_AS_CATEGORIES = 5  # Evidently: numbers with <= 5 distinct values are categories
WASSERSTEIN_NORM_FLOOR = 0.001  # Evidently: wasserstein / max(std(reference), 0.001)
PSI_BINS = 10  # reference deciles
PSI_EPSILON = 1e-4  # replaces an empty bin's share
NONE_CATEGORY = "(none)"
OTHER_CATEGORY = "(other)"


@dataclass(frozen=True, slots=True)
class DriftOptions:
    """The knobs of one comparison, Evidently's defaults unless noted; set them per feature."""

    min_samples: int = 30  # below this on either side: no verdict (ours, not Evidently's)
    p_value: float = 0.05  # KS and chi-square threshold
    distance: float = 0.1  # Wasserstein (normed) and Jensen-Shannon threshold
    small_reference_max: int = 1000  # reference sizes up to this use the p-value tests
    min_category_count: int = 5  # rarer categories (both windows together) count as (other)
    max_categories: int = 20  # categories beyond the most frequent count as (other)
    top_movers: int = 10  # categories or tokens listed in top_movers and the summaries


DEFAULT_OPTIONS = DriftOptions()


def sample_problem(n_ref: int, n_cur: int, min_samples: int) -> str | None:
    """Why two windows of these sizes cannot be compared, or None when they can."""
    if n_ref == 0 and n_cur == 0:
        return "both windows are empty"
    if n_ref == 0:
        return "reference window is empty"
    if n_cur == 0:
        return "current window is empty"
    if n_ref >= min_samples and n_cur >= min_samples:
        return None
    return f"insufficient data: {n_ref} reference and {n_cur} current samples, need {min_samples}"


@contextmanager
def quiet_numerics() -> Iterator[None]:
    """Overflow on huge values and scipy's "switching to asymptotic" notes are not errors here:
    a non-finite result becomes "no verdict" instead."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def finite_values(values: Sequence[float | None]) -> tuple[FloatArray, int]:
    """The finite numbers in ``values`` and how many entries were dropped (None, NaN, inf, junk)."""
    try:
        array = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError, OverflowError):
        numbers = [float(v) if isinstance(v, int | float) else math.nan for v in values]
        array = np.asarray(numbers, dtype=np.float64)
    kept = array[np.isfinite(array)]
    return kept, len(values) - kept.size


def numeric_summary(values: FloatArray, dropped: int) -> dict[str, float]:
    """Count, dropped entries and, when there are values, mean, std, p50 and p95 (any of these
    that overflows is left out: summaries go to a JSON column)."""
    summary = {"count": float(values.size), "dropped": float(dropped)}
    if values.size:
        with quiet_numerics():
            p50, p95 = np.quantile(values, [0.5, 0.95])
            mean, std = float(np.mean(values)), float(np.std(values))
        moments = {"mean": mean, "std": std, "p50": float(p50), "p95": float(p95)}
        summary |= {name: value for name, value in moments.items() if math.isfinite(value)}
    return summary


def share_summary(counts: Counter[str], *, top: int) -> dict[str, float]:
    """Shares of the ``top`` most frequent categories (ties by name)."""
    total = counts.total() or 1
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: max(top, 0)]
    return {name: count / total for name, count in ordered}


def top_movers(
    reference: Mapping[str, float], current: Mapping[str, float], *, top: int
) -> tuple[tuple[str, float, float], ...]:
    """(key, reference share, current share) for the ``top`` largest absolute share changes."""
    ref_total = sum(reference.values()) or 1.0
    cur_total = sum(current.values()) or 1.0
    moves = [
        (key, reference.get(key, 0) / ref_total, current.get(key, 0) / cur_total)
        for key in reference.keys() | current.keys()
    ]
    moves.sort(key=lambda move: (-abs(move[2] - move[1]), move[0]))
    return tuple(moves[: max(top, 0)])


def reference_bin_edges(reference: FloatArray, bins: int = PSI_BINS) -> FloatArray:
    """Interior bin edges at the reference quantiles (deciles for 10 bins), ties merged.

    The outer bins are open, (-inf, first edge] and (last edge, inf), so current values outside
    the reference range still land in a bin. Persist these with a baseline to reuse them.
    """
    quantiles = np.linspace(0.0, 1.0, max(bins, 1) + 1)[1:-1]
    with quiet_numerics():
        return np.unique(np.quantile(reference, quantiles)) if quantiles.size else np.empty(0)


def psi_from_shares(
    reference_shares: FloatArray, current_shares: FloatArray, *, epsilon: float = PSI_EPSILON
) -> float:
    """``sum((cur - ref) * ln(cur / ref))`` over aligned bins, empty bins replaced by ``epsilon``.

    Every term is >= 0, and swapping the two windows gives the same value.
    """
    ref = np.where(reference_shares > 0, reference_shares, epsilon)
    cur = np.where(current_shares > 0, current_shares, epsilon)
    with quiet_numerics():
        return float(np.sum((cur - ref) * (np.log(cur) - np.log(ref))))


def psi(
    reference: Sequence[float | None],
    current: Sequence[float | None],
    *,
    bins: int = PSI_BINS,
    epsilon: float = PSI_EPSILON,
) -> float | None:
    """Population Stability Index of numbers on bins at the reference quantiles (None, NaN and
    infinities dropped); None when either window has no finite value."""
    ref, _ = finite_values(reference)
    cur, _ = finite_values(current)
    if ref.size == 0 or cur.size == 0:
        return None
    return _binned_psi(ref, cur, bins, epsilon)


def _binned_psi(ref: FloatArray, cur: FloatArray, bins: int, epsilon: float) -> float:
    edges = reference_bin_edges(ref, bins)
    ref_counts = np.bincount(np.searchsorted(edges, ref), minlength=edges.size + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur), minlength=edges.size + 1)
    return psi_from_shares(ref_counts / ref.size, cur_counts / cur.size, epsilon=epsilon)


def numerical_drift(
    feature: str,
    reference: Sequence[float | None],
    current: Sequence[float | None],
    *,
    options: DriftOptions = DEFAULT_OPTIONS,
) -> FeatureDrift:
    """KS (small reference) or normed Wasserstein (large) between two windows of numbers.

    None, NaN and infinities are dropped first (counted as ``dropped`` in the summaries). With a
    constant reference and a varying current window the Wasserstein distance is divided by
    Evidently's floor of 0.001, so any real spread reads as a large (drifted) value.
    """
    ref, ref_dropped = finite_values(reference)
    cur, cur_dropped = finite_values(current)
    small = ref.size <= options.small_reference_max
    ref_summary, cur_summary = numeric_summary(ref, ref_dropped), numeric_summary(cur, cur_dropped)
    problem = sample_problem(ref.size, cur.size, options.min_samples)
    if problem is None and np.unique(np.concatenate([ref, cur])).size <= MAX_UNIQUE_AS_CATEGORIES:
        ref_labels = Counter(_number_label(value) for value in ref.tolist())
        cur_labels = Counter(_number_label(value) for value in cur.tolist())
        return count_drift(
            feature,
            "numerical",
            ref_labels,
            cur_labels,
            options=options,
            reference_summary=ref_summary,
            current_summary=cur_summary,
        )
    threshold = options.p_value if small else options.distance
    value = population_stability = None
    if problem is None:
        with quiet_numerics():
            if small:
                value = finite_or_none(float(ks_2samp(ref, cur).pvalue))
            else:
                norm = max(float(np.std(ref)), WASSERSTEIN_NORM_FLOOR)
                value = finite_or_none(float(wasserstein_distance(ref, cur)) / norm)
        population_stability = finite_or_none(_binned_psi(ref, cur, PSI_BINS, PSI_EPSILON))
        problem = None if value is not None else "statistic is not finite (values too large)"
    return FeatureDrift(
        feature=feature,
        kind="numerical",
        statistic="ks" if small else "wasserstein",
        value=value,
        threshold=threshold,
        drifted=None if value is None else (value <= threshold if small else value >= threshold),
        n_ref=ref.size,
        n_cur=cur.size,
        psi=population_stability,
        reason=problem,
        reference_summary=ref_summary,
        current_summary=cur_summary,
    )


def _number_label(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def category_label(value: object) -> str:
    """The category a value counts as: None and NaN are ``(none)``, booleans ``true``/``false``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NONE_CATEGORY
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _kept_categories(
    reference: Counter[str], current: Counter[str], options: DriftOptions
) -> list[str]:
    """Categories tested as themselves, most frequent first; the rest count as ``(other)``."""
    ordered = sorted((reference + current).items(), key=lambda item: (-item[1], item[0]))
    frequent = [name for name, count in ordered if count >= options.min_category_count]
    return frequent[: options.max_categories]


def count_drift(
    feature: str,
    kind: Kind,
    reference: Counter[str],
    current: Counter[str],
    *,
    options: DriftOptions,
    reference_summary: dict[str, float],
    current_summary: dict[str, float],
) -> FeatureDrift:
    """Chi-square p-value (small reference) or Jensen-Shannon distance between two counts."""
    n_ref, n_cur = reference.total(), current.total()
    small = n_ref <= options.small_reference_max
    threshold = options.p_value if small else options.distance
    value = population_stability = None
    drifted = None
    reason = sample_problem(n_ref, n_cur, options.min_samples)
    if reason is None:
        value, population_stability, reason = _test_counts(reference, current, small, options)
        if value is not None:
            drifted = value < threshold if small else value >= threshold
    return FeatureDrift(
        feature=feature,
        kind=kind,
        statistic="chi2" if small else "jensenshannon",
        value=value,
        threshold=threshold,
        drifted=drifted,
        n_ref=n_ref,
        n_cur=n_cur,
        psi=population_stability,
        reason=reason,
        reference_summary=reference_summary,
        current_summary=current_summary,
        top_movers=top_movers(reference, current, top=options.top_movers),
    )


def _test_counts(
    reference: Counter[str], current: Counter[str], small: bool, options: DriftOptions
) -> tuple[float | None, float, str | None]:
    """(p-value or distance, PSI, note) on the kept categories plus ``(other)``."""
    kept = _kept_categories(reference, current, options)
    rows = [
        [counts.get(name, 0) for name in kept] + [counts.total()] for counts in (reference, current)
    ]
    table = np.asarray(rows, dtype=np.float64)
    table[:, -1] -= table[:, :-1].sum(axis=1)  # the last column counts (other)
    if not table[:, -1].any():
        table = table[:, :-1]
    ref_shares, cur_shares = table / table.sum(axis=1, keepdims=True)
    population_stability = psi_from_shares(ref_shares, cur_shares)
    if table.shape[1] == 1:  # a single category left: nothing can have moved
        note = "constant feature in both windows"
        if len(reference.keys() | current.keys()) > 1:
            note = f"every category seen < {options.min_category_count} times: all {OTHER_CATEGORY}"
        return (1.0 if small else 0.0), 0.0, note
    with quiet_numerics():
        if small:
            value = finite_or_none(float(chi2_contingency(table, correction=False).pvalue))
        else:
            value = finite_or_none(float(jensenshannon(ref_shares, cur_shares)))
    return value, population_stability, None if value is not None else "statistic is not finite"


def categorical_drift(
    feature: str,
    reference: Sequence[str | None],
    current: Sequence[str | None],
    *,
    options: DriftOptions = DEFAULT_OPTIONS,
) -> FeatureDrift:
    """Chi-square (small reference) or Jensen-Shannon (large) between two windows of labels.

    None is a category of its own, ``(none)``: a feature that stops being set is a change.
    A category present in only one window is compared like any other (its count is 0 on the
    other side), so a new system prompt taking a real share of traffic is flagged.
    """
    ref_counts = Counter(category_label(value) for value in reference)
    cur_counts = Counter(category_label(value) for value in current)
    return count_drift(
        feature,
        "categorical",
        ref_counts,
        cur_counts,
        options=options,
        reference_summary=share_summary(ref_counts, top=options.top_movers),
        current_summary=share_summary(cur_counts, top=options.top_movers),
    )
