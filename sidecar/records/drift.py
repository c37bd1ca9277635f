"""Drift vocabulary: the comparison of one feature between two windows, a scope's check in a
run, and the stored rows read back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

from sidecar.records.windows import TimeWindow

Kind = Literal["numerical", "categorical", "text", "embedding"]
Statistic = Literal["ks", "chi2", "wasserstein", "jensenshannon", "mmd"]


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """The comparison of one feature between the two windows, as stored in ``drift_checks``.

    ``statistic`` says how to read ``value``: ``ks``, ``chi2`` and ``mmd`` (a permutation
    test) are p-values (small means drift), ``wasserstein`` and ``jensenshannon`` are distances
    (large means drift).
    ``drifted`` is None when there is no verdict, and ``reason`` then says why; ``reason`` may
    also annotate a verdict (a constant feature, a text threshold raised above sampling noise).
    ``top_movers`` holds (category or token, reference share, current share), largest change
    first. Summaries hold count, dropped, mean, std, p50 and p95 for numbers, and the shares of
    the most frequent categories or tokens otherwise.
    """

    feature: str
    kind: Kind
    statistic: Statistic
    value: float | None
    threshold: float
    drifted: bool | None
    n_ref: int
    n_cur: int
    psi: float | None = None
    reason: str | None = None
    reference_summary: dict[str, float] = field(default_factory=dict)
    current_summary: dict[str, float] = field(default_factory=dict)
    top_movers: tuple[tuple[str, float, float], ...] = ()

    def as_json(self) -> dict[str, Any]:
        """A plain dict for a JSON column (tuples become lists)."""
        data = {item.name: getattr(self, item.name) for item in fields(self)}
        return data | {"top_movers": [list(mover) for mover in self.top_movers]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureDrift:
        """The inverse of :meth:`as_json` (keys added by a later version are ignored)."""
        known = {item.name for item in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        movers = tuple((str(k), float(r), float(c)) for k, r, c in values.get("top_movers") or ())
        return cls(**values | {"top_movers": movers})


@dataclass(frozen=True, slots=True)
class ScopeCheck:
    """One model/adapter's comparison in a drift run: every feature, reference vs current."""

    model: str | None
    adapter: str | None
    reference_kind: str  # baseline (pinned with sidecar baseline set drift) or rolling
    reference: TimeWindow
    current: TimeWindow
    results: tuple[FeatureDrift, ...]


@dataclass(frozen=True, slots=True)
class DriftCheck:
    """One stored row of ``drift_checks``: a feature of one scope in one run."""

    run_id: str
    checked_at: datetime
    model: str | None
    adapter: str | None
    reference_kind: str
    reference: TimeWindow
    current: TimeWindow
    result: FeatureDrift


@dataclass(frozen=True, slots=True)
class CheckedFeature:
    """One feature's verdict in a stored run, as the gauges show it."""

    model: str | None
    adapter: str | None
    feature: str
    value: float | None
    drifted: bool | None


@dataclass(frozen=True, slots=True)
class WindowVectors:
    """A seeded sample of a window's stored vectors for one field, and why others are missing."""

    ids: list[str]
    vectors: list[bytes]
    requests: int  # answered requests in the window (with drift features; newest max_rows)
    embedded: int  # of which have this field's vector
    without_bodies: int  # of which were logged with request_log.bodies: none
