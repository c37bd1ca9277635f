"""``sidecar report NAME``: named reports over the logged traffic."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from sidecar.cli.common import (
    CONTEXT,
    config_option,
    database_option,
    load,
    open_engine,
    parse_window,
    require_schema,
)
from sidecar.settings import Settings


@click.command(context_settings=CONTEXT)
@click.argument("name", required=False)
@click.option("--list", "list_reports", is_flag=True, help="List the reports and exit.")
@click.option(
    "--since", default="24h", show_default=True, help="Start: 30m, 24h, 7d or an ISO time."
)
@click.option("--until", help="End (default now): a duration ago or an ISO time.")
@click.option("--model", help="Only this model name (as requested).")
@click.option("--adapter", help="Only this LoRA adapter.")
@click.option(
    "--by", "group_by", type=click.Choice(["hour", "day"]), help="One row per hour or day."
)
@click.option(
    "--format", "output", type=click.Choice(["table", "csv", "json"]), default="table",
    show_default=True,
)  # fmt: skip
@config_option
@database_option
def report(
    name: str | None,
    list_reports: bool,
    since: str,
    until: str | None,
    model: str | None,
    adapter: str | None,
    group_by: str | None,
    output: str,
    config_path: str | None,
    database_url: str | None,
) -> None:
    """Print a named report over the logged traffic (`sidecar report --list` shows them)."""

    from rich.console import Console

    from sidecar.reports import render
    from sidecar.reports.base import REPORTS, ReportOptions
    from sidecar.reports.catalog import load_reports

    load_reports()
    if list_reports or name is None:
        for known in sorted(REPORTS.values(), key=lambda r: r.name):
            click.echo(f"{known.name:<14} {known.description}")
        return
    if name not in REPORTS:
        raise click.BadParameter(f"unknown report {name!r}; known: {', '.join(sorted(REPORTS))}")
    window = parse_window(since, until, model=model, adapter=adapter)
    settings = load(config_path, uses=("database", "cost"), database={"url": database_url})
    options = ReportOptions(group_by=group_by, cost=settings.cost)
    table = _run_report(settings, name, window, options)
    if output == "csv":
        click.echo(render.as_csv(table), nl=False)
    elif output == "json":
        click.echo(render.as_json(table))
    else:
        # Piped output keeps every column readable instead of folding to 80 characters.
        render.as_text(table, Console(width=None if sys.stdout.isatty() else 200))


def _run_report(settings: Settings, name: str, window: Any, options: Any) -> Any:
    from sidecar.reports.base import run_report

    require_schema(settings)

    async def go() -> Any:
        async with open_engine(settings) as engine:
            return await run_report(
                engine, name, window, options, timeout_s=settings.database.statement_timeout_s
            )

    return asyncio.run(go())
