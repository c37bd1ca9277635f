"""``sidecar report compliance``: share of outputs valid against their schema."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from sidecar.reports.base import ReportTable, ReportWindow, register
from sidecar.store.models import RequestRow

VERDICTS = ("valid", "invalid", "unparseable", "truncated", "schema_error")


@register("compliance", "Format compliance by schema, model and adapter (valid share, verdicts).")
async def compliance(connection: AsyncConnection, window: ReportWindow) -> ReportTable:
    table = RequestRow.__table__
    verdict = table.c.schema_verdict
    counts = [sa.func.sum(sa.case((verdict == name, 1), else_=0)).label(name) for name in VERDICTS]
    keys: list[sa.ColumnElement[Any]] = [table.c.schema_name, table.c.model, table.c.adapter]
    bucket = _bucket(connection, window.group_by)
    if bucket is not None:
        keys.insert(0, bucket)
    query = (
        sa.select(*keys, sa.func.count().label("checked"), *counts)
        .where(
            verdict.is_not(None),
            table.c.started_at >= window.since,
            table.c.started_at < window.until,
        )
        .group_by(*keys)
        .order_by(*keys)
    )
    if window.model:
        query = query.where(table.c.model == window.model)
    if window.adapter:
        query = query.where(table.c.adapter == window.adapter)
    rows = []
    for row in await connection.execute(query):
        values = tuple(row)
        checked = row.checked
        rows.append((*values, round(100.0 * row.valid / checked, 2) if checked else None))
    columns = [*(["time"] if bucket is not None else []), "schema", "model", "adapter", "checked",
               *VERDICTS, "valid_pct"]  # fmt: skip
    notes = [] if rows else ["no outputs were checked against a schema in this window"]
    return ReportTable("Format compliance", columns, rows, notes)


def _bucket(connection: AsyncConnection, group_by: str | None) -> sa.ColumnElement[str] | None:
    if group_by is None:
        return None
    started = RequestRow.__table__.c.started_at
    if connection.dialect.name == "postgresql":
        return sa.func.to_char(sa.func.date_trunc(group_by, started), "YYYY-MM-DD HH24:00").label(
            "time"
        )
    pattern = "%Y-%m-%d %H:00" if group_by == "hour" else "%Y-%m-%d"
    return sa.func.strftime(pattern, started).label("time")
