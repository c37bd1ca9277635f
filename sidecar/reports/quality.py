"""``sidecar report quality``: judge scores per model/adapter against the quality baseline."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from sidecar.judge.quality import quality_drop, summarize
from sidecar.records import UNBIASED_REASONS, TimeWindow
from sidecar.reports.base import ReportOptions, ReportTable, register, time_bucket
from sidecar.store.baselines import QUALITY, active_baselines
from sidecar.store.tables import judgements_table
from sidecar.store.windows import narrowed

COLUMNS = ["model", "adapter", "rubric", "scored", "mean", "ci_low", "ci_high", "baseline",
           "change_pct", "verdict", "hard_cases", "hard_mean", "errors", "unjudgeable"]  # fmt: skip
Key = tuple[Any, ...]


@register("quality", "Judge scores per model/adapter vs the quality baseline (drop test).")
async def quality(
    connection: AsyncConnection, window: TimeWindow, options: ReportOptions
) -> ReportTable:
    table = judgements_table
    bucket = time_bucket(connection, options.group_by, table.c.request_started_at)
    keys: list[Any] = [*([bucket] if bucket is not None else []), table.c.model, table.c.adapter]
    query = sa.select(
        *keys, table.c.rubric, table.c.status, table.c.sample_reason, table.c.score
    ).where(*narrowed(table, window, "request_started_at"))
    groups: dict[Key, dict[str, Any]] = defaultdict(
        lambda: {"rubric": None, "scores": [], "hard": [], "errors": 0, "unjudgeable": 0}
    )
    for row in await connection.execute(query):
        *key, rubric, status, reason, score = tuple(row)
        group = groups[tuple(key)]
        group["rubric"] = group["rubric"] or rubric
        if status == "scored":
            group["scores" if reason in UNBIASED_REASONS else "hard"].append(score)
        elif status in ("error", "unjudgeable"):
            group[{"error": "errors"}.get(status, status)] += 1
    baselines = {(b.model, b.adapter): b for b in await active_baselines(connection, QUALITY)}
    rows = [(*key, *_columns(group, baselines.get((key[-2], key[-1]))))
            for key, group in sorted(groups.items(), key=lambda item: tuple(map(str, item[0])))]  # fmt: skip
    notes = _notes(groups, baselines)
    columns = [*(["time"] if bucket is not None else []), *COLUMNS]
    return ReportTable("Output quality (LLM judge)", columns, rows, notes)


def _columns(group: dict[str, Any], baseline: Any) -> tuple[Any, ...]:
    scores: list[float] = group["scores"]
    summary = summarize(scores) if scores else None
    base = baseline.summary if baseline is not None else None
    change = verdict = None
    if summary is not None and base is not None and base.mean:
        change = round(100.0 * (summary.mean / base.mean - 1.0), 1)
        drop = quality_drop(base, scores)
        verdict = "DROP" if drop.flagged else (drop.reason or "ok")
    elif summary is not None:
        verdict = "no baseline"
    hard = group["hard"]
    return (
        group["rubric"], len(scores), _round(summary.mean if summary else None),
        _round(summary.ci_low if summary else None), _round(summary.ci_high if summary else None),
        _round(base.mean if base else None), change, verdict, len(hard),
        _round(sum(hard) / len(hard) if hard else None), group["errors"], group["unjudgeable"],
    )  # fmt: skip


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _notes(groups: dict[Key, dict[str, Any]], baselines: dict[Any, Any]) -> list[str]:
    notes = []
    if not groups:
        notes.append("nothing judged in this window: is judge.enabled set? (docs/judge.md)")
    unjudgeable = sum(group["unjudgeable"] for group in groups.values())
    if unjudgeable:
        notes.append(
            f"{unjudgeable} sampled requests could not be judged: their bodies were not stored "
            "(request_log.bodies: none) or held no prompt/answer"
        )
    if groups and not baselines:
        notes.append("no quality baseline yet: `sidecar baseline set quality --since 7d` sets one")
    notes.append("mean and CI: the unbiased sample only (random, floor, batch, manual); hard "
                 "cases (schema_invalid, thumbs_down, error) are shown apart")  # fmt: skip
    return notes
