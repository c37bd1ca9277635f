"""Traffic reports: volume and tokens, latency percentiles, errors, user feedback."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from sidecar.records import TimeWindow
from sidecar.reports.base import ReportOptions, ReportTable, register, scoped, time_bucket
from sidecar.store.tables import feedback_table, requests_table

QUANTILES = (0.5, 0.95, 0.99)


def _failed(table: sa.Table) -> sa.ColumnElement[bool]:
    return sa.or_(table.c.status >= 500, table.c.error_kind.like("upstream%"))


@register("traffic", "Requests, errors and tokens per day (or --by hour) and model.")
async def traffic(
    connection: AsyncConnection, window: TimeWindow, options: ReportOptions
) -> ReportTable:
    table = requests_table
    bucket = time_bucket(connection, options.group_by or "day", table.c.started_at)
    assert bucket is not None
    keys = [bucket, table.c.model, table.c.adapter]
    query = scoped(
        sa.select(
            *keys,
            sa.func.count().label("requests"),
            sa.func.sum(sa.case((_failed(table), 1), else_=0)).label("errors"),
            sa.func.sum(sa.case((table.c.stream, 1), else_=0)).label("streams"),
            sa.func.coalesce(sa.func.sum(table.c.prompt_tokens), 0).label("prompt_tokens"),
            sa.func.coalesce(sa.func.sum(table.c.completion_tokens), 0).label("completion_tokens"),
        )
        .group_by(*keys)
        .order_by(*keys),
        table,
        window,
    )
    rows = [tuple(row) for row in await connection.execute(query)]
    columns = ["time", "model", "adapter", "requests", "errors", "streams", "prompt_tokens",
               "completion_tokens"]  # fmt: skip
    return ReportTable("Traffic", columns, rows, [] if rows else ["no requests in this window"])


@register("latency", "Latency and time-to-first-token percentiles (p50/p95/p99) per model/adapter.")
async def latency(
    connection: AsyncConnection, window: TimeWindow, options: ReportOptions
) -> ReportTable:
    """Computed in Python so SQLite (no percentile functions) gives the same answer as Postgres."""
    table = requests_table
    bucket = time_bucket(connection, options.group_by, table.c.started_at)
    keys: list[sa.ColumnElement[Any]] = [table.c.model, table.c.adapter]
    if bucket is not None:
        keys.insert(0, bucket)
    query = scoped(
        sa.select(*keys, table.c.latency_ms, table.c.ttft_ms).where(table.c.status < 500),
        table,
        window,
    )
    latencies: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    ttfts: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    result = await connection.stream(query)
    async for row in result:
        key = tuple(row)[: len(keys)]
        latencies[key].append(row.latency_ms)
        if row.ttft_ms is not None:
            ttfts[key].append(row.ttft_ms)
    rows = []
    for key in sorted(latencies, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        rows.append(
            (*key, len(latencies[key]), *_quantiles(latencies[key]), *_quantiles(ttfts[key])[:2])
        )
    columns = [*(["time"] if bucket is not None else []), "model", "adapter", "requests",
               "p50_ms", "p95_ms", "p99_ms", "ttft_p50_ms", "ttft_p95_ms"]  # fmt: skip
    return ReportTable("Latency (successful requests)", columns, rows,
                       [] if rows else ["no successful requests in this window"])  # fmt: skip


def _quantiles(values: list[float]) -> list[float | None]:
    if not values:
        return [None] * len(QUANTILES)
    if len(values) == 1:
        return [round(values[0], 2)] * len(QUANTILES)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return [round(cuts[int(q * 100) - 1], 2) for q in QUANTILES]


@register("errors", "Failed and cancelled requests by kind and status, with an example message.")
async def errors(
    connection: AsyncConnection, window: TimeWindow, options: ReportOptions
) -> ReportTable:
    table = requests_table
    keys = [table.c.error_kind, table.c.status, table.c.model]
    query = scoped(
        sa.select(
            *keys,
            sa.func.count().label("requests"),
            sa.func.max(table.c.started_at).label("last_seen"),
            sa.func.max(table.c.error_message).label("example"),
        )
        .where(sa.or_(table.c.error_kind.is_not(None), table.c.status >= 400))
        .group_by(*keys)
        .order_by(sa.func.count().desc()),
        table,
        window,
    )
    rows = [tuple(row) for row in await connection.execute(query)]
    columns = ["error_kind", "status", "model", "requests", "last_seen", "example"]
    return ReportTable("Errors", columns, rows, [] if rows else ["no errors in this window"])


@register("feedback", "User feedback per model/adapter: satisfaction, escalations, mean score.")
async def feedback(
    connection: AsyncConnection, window: TimeWindow, options: ReportOptions
) -> ReportTable:
    requests, rated = requests_table, feedback_table
    keys = [requests.c.model, requests.c.adapter]
    query = scoped(
        sa.select(
            *keys,
            sa.func.count().label("rated"),
            sa.func.sum(sa.case((rated.c.satisfied, 1), else_=0)).label("satisfied"),
            sa.func.sum(sa.case((rated.c.escalated, 1), else_=0)).label("escalated"),
            sa.func.avg(rated.c.score).label("mean_score"),
        )
        .select_from(rated.join(requests, requests.c.id == rated.c.request_id))
        .group_by(*keys)
        .order_by(*keys),
        requests,
        window,
    )
    rows = []
    for row in await connection.execute(query):
        count = row.rated
        rows.append((row.model, row.adapter, count, round(100.0 * row.satisfied / count, 1),
                     round(100.0 * row.escalated / count, 1), round(float(row.mean_score), 2)))  # fmt: skip
    columns = ["model", "adapter", "rated", "satisfied_pct", "escalated_pct", "mean_score"]
    return ReportTable(
        "User feedback", columns, rows, [] if rows else ["no feedback in this window"]
    )
