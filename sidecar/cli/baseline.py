"""``sidecar baseline set|show``: what quality and drift compare against."""

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
    parse_window,
)


@click.group(context_settings=CONTEXT)
def baseline() -> None:
    """Baselines the quality and drift checks compare against."""


@baseline.command("set", context_settings=CONTEXT)
@click.argument("kind", type=click.Choice(["quality", "drift"]))
@click.option("--since", required=True, help="Window start: 7d (ago) or an ISO time.")
@click.option("--until", help="Window end (default now).")
@click.option("--model", help="Only this model (default: one baseline per model/adapter).")
@config_option
@database_option
def set_baseline(
    kind: str, since: str, until: str | None, model: str | None, config_path: str | None,
    database_url: str | None,
) -> None:  # fmt: skip
    """Pin a baseline from a window: quality = the judge scores in it; drift = its traffic."""
    from sidecar.judge.baselines import set_quality_baselines
    from sidecar.store.baselines import set_drift_baselines

    settings = load_for_database(config_path, database_url, "judge")
    window = parse_window(since, until, model=model)

    async def go() -> Any:
        async with open_engine(settings) as engine:
            now = datetime.now(UTC)
            if kind == "quality":
                return await set_quality_baselines(
                    engine, window=window, now=now, confidence=settings.judge.confidence
                )
            return await set_drift_baselines(engine, window=window, now=now)

    baselines = asyncio.run(go())
    fresh = [b for b in baselines if (b.since, b.until) == (window.since, window.until)]
    if not fresh:
        what = "judge scores" if kind == "quality" else "requests"
        raise click.ClickException(
            f"no {what} between {window.since:%Y-%m-%d %H:%M} and {window.until:%Y-%m-%d %H:%M} UTC"
            f"{f' for model {model}' if model else ''}: nothing to set a {kind} baseline from"
        )
    for found in fresh:
        click.echo(f"{kind} baseline set: {_describe(found)}")


@baseline.command("show", context_settings=CONTEXT)
@config_option
@database_option
def show(config_path: str | None, database_url: str | None) -> None:
    """The baselines in use."""
    from sidecar.store.baselines import DRIFT, QUALITY, active_baselines

    settings = load_for_database(config_path, database_url)

    async def go() -> Any:
        async with open_engine(settings) as engine, engine.connect() as connection:
            return [*await active_baselines(connection, QUALITY),
                    *await active_baselines(connection, DRIFT)]  # fmt: skip

    found = asyncio.run(go())
    if not found:
        click.echo("no baselines set: `sidecar baseline set quality --since 7d`")
    for item in found:
        click.echo(f"{item.kind:<8} {_describe(item)}")


def _describe(item: Any) -> str:
    scope = f"model={item.model or '-'} adapter={item.adapter or '-'}"
    window = f"{item.since:%Y-%m-%d %H:%M} .. {item.until:%Y-%m-%d %H:%M} UTC"
    if item.summary is None:
        return f"{scope}  {window}  n={item.n}  ({item.source})"
    summary = item.summary
    return (
        f"{scope}  {window}  n={item.n}  mean {summary.mean:.3f} "
        f"[{summary.ci_low:.3f}, {summary.ci_high:.3f}] rubric {item.rubric} ({item.source})"
    )
