"""Render a ReportTable as a terminal table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from sidecar.reports.base import ReportTable


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="minutes")
    return str(value)


def _number(value: float) -> str:
    """Two decimals; a non-zero value under 0.01 keeps three significant digits (``0.00752``,
    not ``0.01`` or ``0.00``)."""
    if value == 0 or abs(value) >= 0.01 or not math.isfinite(value):
        return f"{value:,.2f}"
    decimals = min(12, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}".rstrip("0")


def as_text(report: ReportTable, console: Console) -> None:
    table = Table(title=report.title, title_justify="left")
    for column in report.columns:
        table.add_column(
            column, justify="left" if column in {"schema", "model", "adapter", "time"} else "right"
        )
    for row in report.rows:
        table.add_row(*(_cell(value) for value in row))
    console.print(table)
    for note in report.notes:
        console.print(f"[dim]{note}[/dim]")


def as_csv(report: ReportTable) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(report.columns)
    writer.writerows(report.rows)
    return out.getvalue()


def as_json(report: ReportTable) -> str:
    document = {"report": report.title, "rows": report.records(), "notes": report.notes}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2, default=str).decode()
