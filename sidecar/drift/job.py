"""The drift job: per model/adapter, compare the current window with the reference one.

Reference: the pinned drift baseline of the scope (``sidecar baseline set drift``) when there is
one, else the rolling period just before the current window. Runs once across replicas (Postgres
advisory lock, and a run younger than ``drift.interval_s`` is not repeated); results go to
``drift_checks``. The gauges (``sidecar_drift_score`` and friends) follow the newest run in the
database, whoever ran it: this replica, another one, or ``sidecar drift run`` from the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sidecar.drift.embeddings import (
    EMBEDDING_FEATURES,
    MODEL_FORMATS,
    field_text,
    stored_format,
    unpack,
)
from sidecar.drift.features import (
    CATEGORICAL_FEATURES,
    NUMERICAL_FEATURES,
    TEXT_FEATURES,
    RequestFeatures,
    compare_windows,
)
from sidecar.drift.semantic import MAX_SAMPLES, PERMUTATION_SEED, embedding_drift
from sidecar.drift.stats import DriftOptions, numerical_drift
from sidecar.metrics import SidecarMetrics
from sidecar.records import CheckedFeature, FeatureDrift, ScopeCheck, TimeWindow, WindowVectors
from sidecar.scheduler import run_every
from sidecar.settings import DriftSettings
from sidecar.store.baselines import DRIFT, active_baselines
from sidecar.store.drift import (
    has_vectors,
    last_run_at,
    newest_run,
    save_checks,
    scopes_with_traffic,
    stored_bodies,
    window_features,
    window_feedback_scores,
    window_judge_scores,
    window_vectors,
)
from sidecar.store.errors import is_connectivity_error
from sidecar.store.locks import LockKey, session_lock

logger = logging.getLogger("sidecar.drift")
SCORE_FEATURES = ("judge_score", "feedback_score")
ScoreReader = Callable[
    [AsyncConnection, str | None, str | None, TimeWindow, int], Awaitable[Sequence[float]]
]
# Every feature a drift check can report: what `alerts.rules[drift].features` may name.
ALL_FEATURES = (*NUMERICAL_FEATURES, *CATEGORICAL_FEATURES, *TEXT_FEATURES,
                *EMBEDDING_FEATURES.values(), *SCORE_FEATURES)  # fmt: skip
GAUGE_REFRESH_S = 5.0  # how soon the gauges show a run made elsewhere (another replica, the CLI)
EXAMPLE_CHARS = 200  # of a moved example's text, in drift_checks.top_movers
FORCED_LOCK_WAIT_S, LOCK_RETRY_S = 30.0, 0.1


@contextlib.asynccontextmanager
async def _turn(engine: AsyncEngine, wait_s: float) -> AsyncIterator[AsyncConnection | None]:
    """The drift lock, or None when another replica holds it for longer than ``wait_s``. A
    forced run (``sidecar drift run``) waits: every replica's loop takes the lock for a moment
    every few seconds to see whether a run is due, which must not make the command fail."""
    deadline = time.monotonic() + wait_s
    while True:
        async with session_lock(engine, LockKey.DRIFT) as connection:
            if connection is not None or time.monotonic() >= deadline:
                yield connection
                return
        await asyncio.sleep(LOCK_RETRY_S)


async def run_drift(
    engine: AsyncEngine, settings: DriftSettings, metrics: SidecarMetrics, now: datetime, *,
    force: bool = False, rng: np.random.Generator | None = None,
) -> list[ScopeCheck] | None:  # fmt: skip
    """One drift run; None when another replica holds the lock or ran recently (unless forced)."""
    options = DriftOptions(min_samples=settings.min_samples, p_value=settings.p_value,
                           distance=settings.distance)  # fmt: skip
    current = TimeWindow.last(settings.window_s, now)
    reference_s = settings.reference_window_s or settings.window_s
    rolling = TimeWindow.last(reference_s, current.since)
    async with _turn(engine, FORCED_LOCK_WAIT_S if force else 0.0) as connection:
        if connection is None:
            return None
        last = await last_run_at(connection)
        if not force and last is not None and now - last < timedelta(seconds=settings.interval_s):
            return None
        pinned = {(b.model, b.adapter): TimeWindow(b.since, b.until)
                  for b in await active_baselines(connection, DRIFT)}  # fmt: skip
        checks = []
        for model, adapter in await scopes_with_traffic(connection, current):
            reference = pinned.get((model, adapter), rolling)
            # Never compare a pinned baseline with itself: the current window starts after it.
            scoped = TimeWindow(max(current.since, min(reference.until, now)), now)
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
            results += await _embedding_results(
                connection, model, adapter, (reference, scoped), settings, rng
            )
            results += await _quality_results(
                connection, model, adapter, (reference, scoped), settings, options
            )
            kind = "baseline" if (model, adapter) in pinned else "rolling"
            checks.append(ScopeCheck(model, adapter, kind, reference, scoped, results))
        await connection.rollback()  # end the read (SQLite: let the write below take the lock)
        await save_checks(engine, uuid.uuid4().hex, now, checks)
    await refresh_gauges(engine, metrics, None)
    return checks


async def _embedding_results(
    connection: AsyncConnection, model: str | None, adapter: str | None,
    windows: tuple[TimeWindow, TimeWindow], settings: DriftSettings,
    rng: np.random.Generator | None,
) -> tuple[FeatureDrift, ...]:  # fmt: skip
    """``prompt_embedding`` / ``output_embedding``: the MMD test on a seeded sample of each
    window's vectors, with the current texts that moved most (read from the stored bodies).

    With ``drift.embeddings`` on, the configured fields; off (say, ``sidecar drift run``
    without the sidecar's configuration), the fields whose vectors the current window holds.
    """
    options = DriftOptions(min_samples=settings.min_samples, p_value=settings.p_value)
    generator = rng if rng is not None else np.random.default_rng(PERMUTATION_SEED)
    chosen = []
    for field, feature in EMBEDDING_FEATURES.items():
        if settings.embeddings.enabled:
            if field in settings.embeddings.fields:
                chosen.append(field)
        elif await has_vectors(connection, model, adapter, windows[1], feature):
            chosen.append(field)
    if not chosen:
        return ()
    columns = [EMBEDDING_FEATURES[field] for field in chosen]
    ref_windows, cur_windows = [
        await window_vectors(connection, model, adapter, window, columns, settings.max_rows,
                             MAX_SAMPLES, generator)
        for window in windows
    ]  # fmt: skip
    results = []
    for field in chosen:
        feature = EMBEDDING_FEATURES[field]
        ref, cur = ref_windows[feature], cur_windows[feature]
        # Vectors of two models are not comparable: only the configured model's (off: the
        # model that made most of the current window's) are tested.
        fmt = (MODEL_FORMATS[settings.embeddings.model] if settings.embeddings.enabled
               else stored_format(cur.vectors))  # fmt: skip
        reference = [unpack(blob, fmt) for blob in ref.vectors]
        current = [unpack(blob, fmt) for blob in cur.vectors]
        reason = _missing_reason(ref, cur, settings.min_samples)
        if ref.vectors and all(vector is None for vector in reference):
            reason = ("the reference window's vectors come from another drift.embeddings.model "
                      "than the current one's: pin a new drift baseline after switching models")  # fmt: skip
        found = await asyncio.to_thread(
            embedding_drift, feature, reference, current, options=options,
            missing_reason=reason, rng=generator,
        )  # fmt: skip
        movers: tuple[tuple[str, float, float], ...] = ()
        if found.moved:
            column = "request_body" if field == "prompt" else "response_body"
            ids = [cur.ids[moved.index] for moved in found.moved]
            bodies = await stored_bodies(connection, ids, column)
            movers = tuple(
                (_example(field_text(bodies.get(ids[i]), field)), moved.reference_similarity,
                 moved.current_similarity)
                for i, moved in enumerate(found.moved)
            )  # fmt: skip
        results.append(dataclasses.replace(found.result, top_movers=movers))
    return tuple(results)


async def _quality_results(
    connection: AsyncConnection, model: str | None, adapter: str | None,
    windows: tuple[TimeWindow, TimeWindow], settings: DriftSettings, options: DriftOptions,
) -> tuple[FeatureDrift, ...]:  # fmt: skip
    """``judge_score`` and ``feedback_score``: the shape of the distributions (KS, or chi-square
    on the 1-5 ratings), so more 1s and 5s show although the mean holds. Left out when neither
    window has any (no judge, no feedback)."""
    results = []
    readers: tuple[ScoreReader, ...] = (window_judge_scores, window_feedback_scores)
    for feature, read in zip(SCORE_FEATURES, readers, strict=True):
        reference, current = windows
        ref = await read(connection, model, adapter, reference, settings.max_rows)
        cur = await read(connection, model, adapter, current, settings.max_rows)
        if ref or cur:
            results.append(numerical_drift(feature, ref, cur, options=options))
    return tuple(results)


def _missing_reason(ref: WindowVectors, cur: WindowVectors, min_samples: int) -> str | None:
    """Why a window has too few vectors, when the stored rows can tell (None: the generic)."""
    if len(ref.vectors) >= min_samples and len(cur.vectors) >= min_samples:
        return None
    requests = ref.requests + cur.requests
    without = ref.without_bodies + cur.without_bodies
    if requests and without * 2 >= requests:
        return (f"no embeddings: {without} of {requests} requests were logged with "
                "request_log.bodies: none, so there was no text to embed")  # fmt: skip
    missing = requests - ref.embedded - cur.embedded
    return (f"insufficient data: {len(ref.vectors)} reference and {len(cur.vectors)} current "
            f"vectors, need {min_samples}; {missing} of {requests} requests have none (logged "
            "before drift.embeddings was enabled, bodies not stored, or no text)")  # fmt: skip


def _example(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= EXAMPLE_CHARS else flat[: EXAMPLE_CHARS - 3] + "..."


def _per_feature(options: DriftOptions) -> dict[str, DriftOptions]:
    chosen = dict.fromkeys((*NUMERICAL_FEATURES, *CATEGORICAL_FEATURES), options)
    # Words move in both directions at once: keep enough to show the risers and the fallers.
    return chosen | dict.fromkeys(TEXT_FEATURES, dataclasses.replace(options, top_movers=30))


def export_run(metrics: SidecarMetrics, features: list[CheckedFeature]) -> None:
    """Show one stored run on the gauges; series of scopes the run no longer covers go away."""
    for gauge in (metrics.drift_score, metrics.drift_detected, metrics.drift_share):
        gauge.clear()
    verdicts: dict[str, list[bool]] = {}
    for found in features:
        model = metrics.model_label(found.model)
        if found.value is not None:
            metrics.drift_score.labels(found.feature, model).set(found.value)
        metrics.drift_detected.labels(found.feature, model).set(1 if found.drifted else 0)
        if found.drifted is not None:
            verdicts.setdefault(model, []).append(found.drifted)
        else:
            verdicts.setdefault(model, [])
    for model, drifted in verdicts.items():
        metrics.drift_share.labels(model).set(sum(drifted) / len(drifted) if drifted else 0.0)


async def refresh_gauges(
    engine: AsyncEngine, metrics: SidecarMetrics, shown: str | None
) -> str | None:
    """Export the newest stored run if it is not the one shown yet; returns the run shown."""
    async with engine.connect() as connection:
        run_id, features = await newest_run(connection)
    if run_id is not None and run_id != shown:
        export_run(metrics, features)
    return run_id or shown


async def run_drift_loop(
    engine: AsyncEngine, settings: DriftSettings, metrics: SidecarMetrics, ready: asyncio.Event
) -> None:
    """Every few seconds: try a run (only one replica per ``interval_s`` runs; the others find it
    done with one query) and bring the gauges to the newest stored run."""
    shown: str | None = None

    async def one_round(now: datetime) -> None:
        nonlocal shown
        checks = await run_drift(engine, settings, metrics, now)
        shown = await refresh_gauges(engine, metrics, shown)
        for check in checks or ():
            drifted = [result.feature for result in check.results if result.drifted]
            if drifted:
                logger.warning("drift for model=%s adapter=%s in: %s", check.model,
                               check.adapter, ", ".join(drifted))  # fmt: skip

    await run_every("drift", min(GAUGE_REFRESH_S, settings.interval_s), one_round,
                    metrics=metrics, is_outage=is_connectivity_error, ready=ready)  # fmt: skip
