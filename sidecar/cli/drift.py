"""``sidecar drift run``: a drift check now."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import click

from sidecar.cli.common import (
    CONTEXT,
    config_option,
    database_option,
    load_for_database,
    open_engine,
)


@click.group(context_settings=CONTEXT)
def drift() -> None:
    """Drift: compare recent traffic with a reference window (docs/drift.md)."""


@drift.command("run", context_settings=CONTEXT)
@config_option
@database_option
def drift_run(config_path: str | None, database_url: str | None) -> None:
    """Run a drift check now (the sidecar also runs one every drift.interval_s)."""
    from sidecar.drift.job import run_drift
    from sidecar.metrics import SidecarMetrics

    settings = load_for_database(config_path, database_url, "drift")

    async def go() -> Any:
        async with open_engine(settings) as engine:
            return await run_drift(
                engine, settings.drift, SidecarMetrics(), datetime.now(UTC), force=True
            )

    checks = asyncio.run(go())
    if checks is None:
        raise click.ClickException("another sidecar is running a drift check right now; retry")
    if not checks:
        click.echo("no answered requests with drift features in the current window")
    for check in checks:
        drifted = [result.feature for result in check.results if result.drifted]
        undecided = sum(1 for result in check.results if result.drifted is None)
        click.echo(
            f"model={check.model} adapter={check.adapter or '-'} vs {check.reference_kind} "
            f"reference: {', '.join(drifted) or 'no drift'}"
            + (f" ({undecided} features without enough data)" if undecided else "")
        )
    click.echo("details: sidecar report drift --since 1h")
