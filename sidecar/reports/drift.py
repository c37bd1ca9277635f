"""``sidecar report drift``: the newest drift run in the window, feature by feature."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from sidecar.records import TimeWindow
from sidecar.reports.base import ReportOptions, ReportTable, register
from sidecar.store.windows import newest_drift_run

COLUMNS = ["model", "adapter", "feature", "statistic", "value", "threshold", "verdict",
           "n_ref", "n_cur", "reference", "current", "top_movers"]  # fmt: skip


@register("drift", "Drift per feature: reference vs current window, statistic and verdict.")
async def drift(
    connection: AsyncConnection, window: TimeWindow, options: ReportOptions
) -> ReportTable:
    rows = []
    checks = await newest_drift_run(connection, window)
    for check in checks:
        result = check.result
        verdict = "DRIFT" if result.drifted else "ok"
        if result.drifted is None:
            verdict = result.reason or "-"
        rows.append((
            check.model, check.adapter, result.feature, result.statistic, _round(result.value),
            result.threshold, verdict, result.n_ref, result.n_cur,
            _summary(result.reference_summary), _summary(result.current_summary),
            _examples(result.top_movers) if result.kind == "embedding"
            else _movers(result.top_movers),
        ))  # fmt: skip
    notes = []
    if checks:
        first = checks[0]
        current, reference = first.current, first.reference
        notes.append(
            f"run at {first.checked_at:%Y-%m-%d %H:%M} UTC: current {current.since:%m-%d %H:%M}"
            f" .. {current.until:%m-%d %H:%M} vs {first.reference_kind} reference "
            f"{reference.since:%m-%d %H:%M} .. {reference.until:%m-%d %H:%M}"
        )
        notes.append("ks, chi2 and mmd values are p-values (drift below the threshold); "
                     "wasserstein and jensenshannon are distances (drift at or above it)")  # fmt: skip
        if any(check.result.kind == "embedding" for check in checks):
            notes.append("embedding features: top_movers are current prompts/outputs where the "
                         "current window is denser than the reference (kernel similarity "
                         "to the reference -> to the current window)")  # fmt: skip
    else:
        notes.append("no drift check in this window: checks run every drift.interval_s, or now "
                     "with `sidecar drift run`")  # fmt: skip
    return ReportTable("Drift (newest check in the window)", COLUMNS, rows, notes)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _summary(summary: Any) -> str:
    """Mean and p95 of a numerical summary, or the top shares of a categorical one."""
    if not isinstance(summary, dict) or not summary:
        return ""
    if "mmd2" in summary:
        return (f"n {summary.get('count', 0):.0f}, mmd2 {summary['mmd2']:.4g}, centroid distance "
                f"{summary.get('centroid_cosine_distance', 0):.4g}")  # fmt: skip
    if "count" in summary:
        return ", ".join(f"{key} {summary[key]:.4g}" for key in ("mean", "p95") if key in summary)
    return ", ".join(f"{name} {share:.0%}" for name, share in list(summary.items())[:3])


def _movers(movers: Sequence[tuple[str, float, float]]) -> str:
    """The biggest risers and fallers: 'up: flight 0.0%->9.8%; down: plan 12.5%->0.0%'."""
    rising = [m for m in movers if m[2] > m[1]][:3]
    falling = [m for m in movers if m[2] < m[1]][:3]
    parts = [f"{label}: " + ", ".join(f"{name} {ref:.1%}->{cur:.1%}" for name, ref, cur in group)
             for label, group in (("up", rising), ("down", falling)) if group]  # fmt: skip
    return "; ".join(parts)


def _examples(movers: Sequence[tuple[str, float, float]]) -> str:
    """Moved examples of an embedding feature: '"text" 0.31->0.52; ...' (first three)."""
    return "; ".join(f'"{text}" {ref:.2f}->{cur:.2f}' for text, ref, cur in movers[:3])
