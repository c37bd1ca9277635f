"""Drift in the store: the scopes with traffic, a window's features and vectors (bounded), the
checks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sidecar.records import UNBIASED_REASONS, CheckedFeature, ScopeCheck, TimeWindow, WindowVectors
from sidecar.store.errors import translating
from sidecar.store.tables import (
    drift_checks_table,
    feedback_table,
    judgements_table,
    requests_table,
)
from sidecar.store.windows import same_model, within

ID_CHUNK = 500  # ids per IN (...) list


def _answered(window: TimeWindow) -> list[sa.ColumnElement[bool]]:
    """Requests of the window answered with a 2xx and with drift features."""
    table = requests_table
    return [within(table.c.started_at, window), table.c.status >= 200, table.c.status < 300,
            table.c.features.is_not(None)]  # fmt: skip


async def scopes_with_traffic(
    connection: AsyncConnection, window: TimeWindow
) -> list[tuple[str | None, str | None]]:
    """The models and adapters with answered requests in the window."""
    table = requests_table
    query = (
        sa.select(table.c.model, table.c.adapter)
        .where(*_answered(window), table.c.model.is_not(None))
        .group_by(table.c.model, table.c.adapter)
        .order_by(table.c.model, table.c.adapter)
    )
    return [(row[0], row[1]) for row in await connection.execute(query)]


async def window_features(
    connection: AsyncConnection, model: str | None, adapter: str | None, window: TimeWindow,
    limit: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """The stored features of a scope's answered requests in a window, newest first, at most
    ``limit`` (the query reads the window through the started_at index, never the table)."""
    table = requests_table
    query = (
        sa.select(table.c.features)
        .where(*_answered(window), *same_model(requests_table, model, adapter))
        .order_by(table.c.started_at.desc())
        .limit(limit)
    )
    return [row[0] for row in await connection.execute(query) if isinstance(row[0], dict)]


async def window_vectors(
    connection: AsyncConnection, model: str | None, adapter: str | None, window: TimeWindow,
    columns: Sequence[str], limit: int, sample: int, rng: np.random.Generator,
) -> dict[str, WindowVectors]:  # fmt: skip
    """Per column (``prompt_embedding``, ``output_embedding``), at most ``sample`` vectors drawn
    at random from the newest ``limit`` answered requests of the window that have one. One
    pass over the window for every column, then the sampled vectors by id."""
    table = requests_table
    flags = [table.c[column].is_not(None) for column in columns]
    query = (
        sa.select(table.c.id, table.c.body_policy == "none", *flags)
        .where(*_answered(window), *same_model(requests_table, model, adapter))
        .order_by(table.c.started_at.desc()).limit(limit)
    )  # fmt: skip
    rows = (await connection.execute(query)).all()
    without_bodies = sum(bool(row[1]) for row in rows)
    found: dict[str, WindowVectors] = {}
    for position, column in enumerate(columns, start=2):
        ids = [row[0] for row in rows if row[position]]
        embedded = len(ids)
        if len(ids) > sample:
            ids = [ids[i] for i in sorted(rng.choice(len(ids), sample, replace=False).tolist())]
        blobs: dict[str, bytes] = {}
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            by_id = sa.select(table.c.id, table.c[column]).where(table.c.id.in_(chunk))
            blobs.update({row[0]: row[1] for row in await connection.execute(by_id)})
        kept = [request_id for request_id in ids if blobs.get(request_id) is not None]
        found[column] = WindowVectors(kept, [blobs[request_id] for request_id in kept],
                                      len(rows), embedded, without_bodies)  # fmt: skip
    return found


async def has_vectors(
    connection: AsyncConnection, model: str | None, adapter: str | None, window: TimeWindow,
    column: str,
) -> bool:  # fmt: skip
    """Whether any answered request of the window has a vector in ``column``."""
    table = requests_table
    query = sa.select(table.c.id).where(
        *_answered(window), *same_model(requests_table, model, adapter),
        table.c[column].is_not(None),
    ).limit(1)  # fmt: skip
    return (await connection.scalar(query)) is not None


async def window_judge_scores(
    connection: AsyncConnection, model: str | None, adapter: str | None, window: TimeWindow,
    limit: int,
) -> list[float]:  # fmt: skip
    """Normalised (0-1) scores of the unbiased judge sample of the window's requests (random,
    floor, batch, manual: hard cases would follow the sampling policy, not the traffic)."""
    table = judgements_table
    query = (
        sa.select(table.c.score_normalized)
        .where(table.c.status == "scored", table.c.sample_reason.in_(sorted(UNBIASED_REASONS)),
               within(table.c.request_started_at, window), *same_model(table, model, adapter),
               table.c.score_normalized.is_not(None))
        .order_by(table.c.request_started_at.desc()).limit(limit)
    )  # fmt: skip
    return [float(row[0]) for row in await connection.execute(query)]


async def window_feedback_scores(
    connection: AsyncConnection, model: str | None, adapter: str | None, window: TimeWindow,
    limit: int,
) -> list[int]:  # fmt: skip
    """Feedback scores (1-5; up = 5, down = 1) on the window's answered requests."""
    feedback, requests = feedback_table, requests_table
    query = (
        sa.select(feedback.c.score)
        .join(requests, requests.c.id == feedback.c.request_id)
        .where(*_answered(window), *same_model(requests_table, model, adapter))
        .order_by(requests.c.started_at.desc()).limit(limit)
    )  # fmt: skip
    return [int(row[0]) for row in await connection.execute(query)]


async def stored_bodies(
    connection: AsyncConnection, ids: Sequence[str], column: str
) -> dict[str, Any]:
    """``request_body`` or ``response_body`` of a few requests, by id."""
    table = requests_table
    query = sa.select(table.c.id, table.c[column]).where(table.c.id.in_(list(ids)))
    return {row[0]: row[1] for row in await connection.execute(query)}


@translating
async def save_checks(
    engine: AsyncEngine, run_id: str, checked_at: datetime, checks: Sequence[ScopeCheck]
) -> None:
    rows = [
        {
            "run_id": run_id, "checked_at": checked_at, "model": check.model,
            "adapter": check.adapter, "feature": result.feature, "kind": result.kind,
            "statistic": result.statistic, "value": result.value, "threshold": result.threshold,
            "drifted": result.drifted, "psi": result.psi, "n_ref": result.n_ref,
            "n_cur": result.n_cur, "reference": check.reference_kind,
            "ref_since": check.reference.since, "ref_until": check.reference.until,
            "cur_since": check.current.since, "cur_until": check.current.until,
            "reason": result.reason, "reference_summary": result.reference_summary,
            "current_summary": result.current_summary,
            "top_movers": [list(mover) for mover in result.top_movers],
        }
        for check in checks
        for result in check.results
    ]  # fmt: skip
    if rows:
        async with engine.begin() as connection:
            await connection.execute(sa.insert(drift_checks_table), rows)


async def last_run_at(connection: AsyncConnection) -> datetime | None:
    found: datetime | None = await connection.scalar(
        sa.select(sa.func.max(drift_checks_table.c.checked_at))
    )
    return found


async def newest_run(connection: AsyncConnection) -> tuple[str | None, list[CheckedFeature]]:
    """The id and rows of the newest drift run, whoever ran it (this process, another replica,
    ``sidecar drift run``); ``(None, [])`` before the first. One indexed lookup plus the run."""
    table = drift_checks_table
    newest = await connection.scalar(
        sa.select(table.c.run_id).order_by(table.c.checked_at.desc()).limit(1)
    )
    if newest is None:
        return None, []
    query = sa.select(table.c.model, table.c.adapter, table.c.feature, table.c.value,
                      table.c.drifted).where(table.c.run_id == newest).order_by(table.c.id)  # fmt: skip
    rows = (await connection.execute(query)).all()
    return str(newest), [CheckedFeature(*row) for row in rows]
