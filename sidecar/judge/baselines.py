"""Quality baselines: what the judge's scores looked like when the model was known good.

Set by hand from a window (``sidecar baseline set quality``), or automatically from a model's
first ``judge.baseline_auto_samples`` unbiased scores. The numbers (mean and confidence
interval) are computed here; the store only reads the scores and writes the row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.judge.quality import summarize
from sidecar.records import Baseline, TimeWindow
from sidecar.store import baselines as store
from sidecar.store.errors import translating
from sidecar.store.windows import ScoreScope, unbiased_scores


@translating
async def set_quality_baselines(
    engine: AsyncEngine, *, window: TimeWindow, now: datetime, confidence: float,
    min_samples: int = 2, source: str = "manual",
) -> list[Baseline]:  # fmt: skip
    """One baseline per model/adapter from the unbiased scores of a window (only the window's
    model, when it names one), from the rubric version with the most scores."""
    async with engine.begin() as connection:
        scopes = await unbiased_scores(connection, window)
        chosen: dict[tuple[str | None, str | None], ScoreScope] = {}
        for scope, scores in sorted(scopes.items(), key=lambda item: len(item[1])):
            if len(scores) >= min_samples:
                chosen[(scope[0], scope[1])] = scope  # the rubric version with the most scores
        for scope in chosen.values():
            summary = summarize(scopes[scope], confidence)
            await store.pin_quality_baseline(
                connection, scope, summary, window, source=source, now=now
            )
        return await store.active_baselines(connection, store.QUALITY)


@translating
async def auto_quality_baselines(
    engine: AsyncEngine, *, now: datetime, samples: int, lookback_s: float, confidence: float
) -> list[Baseline]:
    """For each model/adapter without a quality baseline: once ``samples`` unbiased scores exist,
    the first ``samples`` of them become its baseline (source ``auto``)."""
    lookback = TimeWindow.last(lookback_s, now)
    created = []
    async with engine.begin() as connection:
        have = {
            (b.model, b.adapter) for b in await store.active_baselines(connection, store.QUALITY)
        }
        for scope, scores in (await unbiased_scores(connection, lookback)).items():
            model, adapter = scope[0], scope[1]
            if (model, adapter) in have or len(scores) < samples:
                continue
            first = await store.first_unbiased_scores(connection, scope, lookback, samples)
            summary = summarize([score for _, score in first], confidence)
            # The window the samples span: from the first to just after the last.
            spanned = TimeWindow(first[0][0], first[-1][0] + timedelta(microseconds=1))
            await store.pin_quality_baseline(
                connection, scope, summary, spanned, source="auto", now=now
            )
            have.add((model, adapter))
            created.append((model, adapter))
        if not created:
            return []
        return [
            b
            for b in await store.active_baselines(connection, store.QUALITY)
            if (b.model, b.adapter) in created
        ]
