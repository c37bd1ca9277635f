"""Report plumbing: the options a report takes beside its window, its result table, the registry,
a safe runner."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sidecar.records import TimeWindow
from sidecar.settings import CostSettings
from sidecar.store.windows import narrowed

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> datetime:
    """``24h``, ``7d``, ``30m`` (ago) or an ISO date/time (UTC when no zone is given)."""
    match = _DURATION.match(text.strip())
    try:
        if match:
            return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"{text!r} reaches beyond the calendar (years 1-9999)") from exc
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is neither a duration (30m, 24h, 7d, 2w) nor an ISO time (2026-11-01T00:00)"
        ) from exc


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """What a report is asked for beyond its :class:`~sidecar.records.TimeWindow`."""

    group_by: str | None = None  # "hour" or "day" for reports that bucket by time
    cost: CostSettings = field(default_factory=CostSettings)  # prices for the cost report


@dataclass(frozen=True, slots=True)
class ReportTable:
    title: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    notes: list[str] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


ReportQuery = Callable[[AsyncConnection, TimeWindow, ReportOptions], Awaitable[ReportTable]]


@dataclass(frozen=True, slots=True)
class Report:
    name: str
    description: str
    query: ReportQuery


REPORTS: dict[str, Report] = {}


def register(name: str, description: str) -> Callable[[ReportQuery], ReportQuery]:
    """Register a report under ``name`` (built-ins use this too)."""

    def decorate(query: ReportQuery) -> ReportQuery:
        REPORTS[name] = Report(name, description, query)
        return query

    return decorate


async def run_report(
    engine: AsyncEngine, name: str, window: TimeWindow, options: ReportOptions | None = None, *,
    timeout_s: float,
) -> ReportTable:  # fmt: skip
    """Run a report in a read-only transaction with a statement timeout (Postgres)."""
    report = REPORTS[name]
    async with engine.connect() as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            await connection.execute(sa.text("SET TRANSACTION READ ONLY"))
            await connection.execute(
                sa.text(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
            )
        return await report.query(connection, window, options or ReportOptions())


def time_bucket(
    connection: AsyncConnection, group_by: str | None, column: sa.ColumnElement[Any]
) -> sa.ColumnElement[str] | None:
    """``YYYY-MM-DD HH:00`` (hour) or ``YYYY-MM-DD`` (day) text for ``column``, on either backend."""
    if group_by is None:
        return None
    if connection.dialect.name == "postgresql":
        pattern = "YYYY-MM-DD HH24:00" if group_by == "hour" else "YYYY-MM-DD"
        return sa.func.to_char(sa.func.timezone("UTC", column), pattern).label("time")
    sqlite_pattern = "%Y-%m-%d %H:00" if group_by == "hour" else "%Y-%m-%d"
    return sa.func.strftime(sqlite_pattern, column).label("time")


def scoped(query: sa.Select[Any], table: sa.Table, window: TimeWindow) -> sa.Select[Any]:
    """Restrict a query on ``requests`` to the window, model and adapter asked for."""
    return query.where(*narrowed(table, window))
