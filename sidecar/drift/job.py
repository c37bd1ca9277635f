"""The drift job: per model/adapter, compare the current window with the reference one.

Reference: the pinned drift baseline of the scope (``sidecar baseline set drift``) when there is
one, else the rolling period just before the current window. Runs once across replicas (Postgres
advisory lock, and a run younger than ``drift.interval_s`` is not repeated); results go to
``drift_checks`` and the ``sidecar_drift_score`` gauge.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.drift.features import (
    CATEGORICAL_FEATURES,
    NUMERICAL_FEATURES,
    TEXT_FEATURES,
    RequestFeatures,
    compare_windows,
    share_drifted,
)
from sidecar.drift.stats import DriftOptions
from sidecar.metrics import SidecarMetrics
from sidecar.settings import DriftSettings
from sidecar.store.baselines import DRIFT, active_baselines
from sidecar.store.drift import (
    DriftWindow,
    ScopeCheck,
    drift_turn,
    last_run_at,
    save_checks,
    scopes_with_traffic,
    window_features,
)
from sidecar.store.writes import is_connectivity_error

logger = logging.getLogger("sidecar.drift")


async def run_drift(
    engine: AsyncEngine, settings: DriftSettings, metrics: SidecarMetrics, now: datetime, *,
    force: bool = False, rng: np.random.Generator | None = None,
) -> list[ScopeCheck] | None:  # fmt: skip
    """One drift run; None when another replica holds the lock or ran recently (unless forced)."""
    options = DriftOptions(min_samples=settings.min_samples, p_value=settings.p_value,
                           distance=settings.distance)  # fmt: skip
    current = DriftWindow("current", now - timedelta(seconds=settings.window_s), now)
    reference_s = settings.reference_window_s or settings.window_s
    rolling = DriftWindow("rolling", current.since - timedelta(seconds=reference_s), current.since)
    async with drift_turn(engine) as connection:
        if connection is None:
            return None
        last = await last_run_at(connection)
        if not force and last is not None and now - last < timedelta(seconds=settings.interval_s):
            return None
        pinned = {(b.model, b.adapter): DriftWindow("baseline", b.since, b.until)
                  for b in await active_baselines(connection, DRIFT)}  # fmt: skip
        checks = []
        for model, adapter in await scopes_with_traffic(connection, current.since, current.until):
            reference = pinned.get((model, adapter), rolling)
            # Never compare a pinned baseline with itself: the current window starts after it.
            scoped = DriftWindow("current", max(current.since, min(reference.until, now)), now)
            ref_rows = await window_features(
                connection, model, adapter, reference, settings.max_rows
            )
            cur_rows = await window_features(connection, model, adapter, scoped, settings.max_rows)
            results = await asyncio.to_thread(
                compare_windows,
                [RequestFeatures.from_json(row) for row in ref_rows],
                [RequestFeatures.from_json(row) for row in cur_rows],
                options=_per_feature(options), rng=rng,
            )  # fmt: skip
            checks.append(ScopeCheck(model, adapter, reference, scoped, results))
        await connection.rollback()  # end the read (SQLite: let the write below take the lock)
        await save_checks(engine, uuid.uuid4().hex, now, checks)
    _export(metrics, checks)
    return checks


def _per_feature(options: DriftOptions) -> dict[str, DriftOptions]:
    chosen = dict.fromkeys((*NUMERICAL_FEATURES, *CATEGORICAL_FEATURES), options)
    # Words move in both directions at once: keep enough to show the risers and the fallers.
    return chosen | dict.fromkeys(TEXT_FEATURES, dataclasses.replace(options, top_movers=30))


def _export(metrics: SidecarMetrics, checks: list[ScopeCheck]) -> None:
    for check in checks:
        model = metrics.model_label(check.model)
        for result in check.results:
            if result.value is not None:
                metrics.drift_score.labels(result.feature, model).set(result.value)
            metrics.drift_detected.labels(result.feature, model).set(1 if result.drifted else 0)
        if check.results:
            metrics.drift_share.labels(model).set(share_drifted(check.results))


async def run_drift_loop(
    engine: AsyncEngine, settings: DriftSettings, metrics: SidecarMetrics, ready: asyncio.Event
) -> None:
    """Try a run every minute (or ``interval_s`` if shorter); only one replica per interval runs."""
    await ready.wait()
    while True:
        await asyncio.sleep(min(60.0, settings.interval_s))
        try:
            checks = await run_drift(engine, settings, metrics, datetime.now(UTC))
        except Exception as exc:
            if is_connectivity_error(exc):
                logger.debug("drift run skipped: database unreachable (%s)", exc)
            else:
                logger.exception("drift run failed")
            continue
        for check in checks or ():
            drifted = [result.feature for result in check.results if result.drifted]
            if drifted:
                logger.warning("drift for model=%s adapter=%s in: %s", check.model,
                               check.adapter, ", ".join(drifted))  # fmt: skip
