"""``sidecar report compliance``: share of outputs valid against their schema."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from sidecar.records import TimeWindow
from sidecar.reports.base import ReportOptions, ReportTable, register, scoped, time_bucket
from sidecar.store.tables import requests_table

VERDICTS = ("valid", "invalid", "unparseable", "truncated", "schema_error")


@register("compliance", "Format compliance by schema, model and adapter (valid share, verdicts).")
async def compliance(
    connection: AsyncConnection, window: TimeWindow, options: ReportOptions
) -> ReportTable:
    table = requests_table
    verdict = table.c.schema_verdict
    counts = [sa.func.sum(sa.case((verdict == name, 1), else_=0)).label(name) for name in VERDICTS]
    keys: list[sa.ColumnElement[Any]] = [table.c.schema_name, table.c.model, table.c.adapter]
    bucket = time_bucket(connection, options.group_by, table.c.started_at)
    if bucket is not None:
        keys.insert(0, bucket)
    query = scoped(
        sa.select(*keys, sa.func.count().label("checked"), *counts)
        .where(verdict.is_not(None))
        .group_by(*keys)
        .order_by(*keys),
        table,
        window,
    )
    rows = []
    for row in await connection.execute(query):
        values = tuple(row)
        checked = row.checked
        rows.append((*values, round(100.0 * row.valid / checked, 2) if checked else None))
    columns = [*(["time"] if bucket is not None else []), "schema", "model", "adapter", "checked",
               *VERDICTS, "valid_pct"]  # fmt: skip
    notes = [] if rows else ["no outputs were checked against a schema in this window"]
    return ReportTable("Format compliance", columns, rows, notes)
