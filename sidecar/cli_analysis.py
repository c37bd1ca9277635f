"""``sidecar judge run``, ``sidecar baseline set|show`` and ``sidecar drift run``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import click

from sidecar.cli_common import CONTEXT, config_option, database_option, load, require_schema
from sidecar.settings import Settings


def _window(since: str, until: str | None) -> tuple[datetime, datetime]:
    from sidecar.reports.base import parse_since

    now = datetime.now(UTC)
    try:
        return parse_since(since, now), parse_since(until, now) if until else now
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _settings(config_path: str | None, database_url: str | None, *uses: str) -> Settings:
    """The settings of a command that reads the ``database`` section and ``uses``."""
    settings = load(config_path, uses=("database", *uses), database={"url": database_url})
    require_schema(settings)
    return settings


@click.group(context_settings=CONTEXT)
def judge() -> None:
    """LLM-as-judge: score logged requests on demand (docs/judge.md)."""


@judge.command("run", context_settings=CONTEXT)
@click.option("--since", default="7d", show_default=True, help="Start: 30m, 24h, 7d or ISO time.")
@click.option("--until", help="End (default now).")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1), help="At most N.")
@click.option("--model", help="Only requests for this model.")
@config_option
@database_option
def run(
    since: str, until: str | None, limit: int, model: str | None, config_path: str | None,
    database_url: str | None,
) -> None:  # fmt: skip
    """Judge up to LIMIT requests of a window now: unjudged samples first, then random picks.

    Uses the `judge` section of the configuration (endpoint, model, key, rubrics, daily caps).
    """
    from rich.progress import Progress

    from sidecar.errors import ConfigError
    from sidecar.judge.client import JudgeClient
    from sidecar.judge.job import JudgeJob, Rubrics
    from sidecar.judge.sampling import SampleReason
    from sidecar.metrics import SidecarMetrics
    from sidecar.store.engine import create_engine
    from sidecar.store.judgements import claim_samples

    settings = _settings(config_path, database_url, "judge")
    start, end = _window(since, until)
    if settings.judge.api_key is None and "api.openai.com" in settings.judge.base_url:
        raise click.ClickException(
            "judge.api_key is not set: add `judge: {api_key: ${OPENAI_API_KEY}}` to the config, "
            "or point judge.base_url at your own OpenAI-compatible server"
        )
    try:
        rubrics = Rubrics(settings.judge)
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from exc

    async def go() -> Any:
        engine = create_engine(settings.database.url)
        job = JudgeJob(engine, settings.judge, SidecarMetrics(), JudgeClient(settings.judge),
                       rubrics=rubrics)  # fmt: skip
        try:
            with Progress(transient=True) as progress:
                task = progress.add_task("judging", total=limit)
                advance = lambda count: progress.advance(task, count)  # noqa: E731
                lookback_s = (datetime.now(UTC) - start).total_seconds()
                sampled = await claim_samples(
                    engine, replica=job.replica, now=end, lookback_s=lookback_s, limit=limit,
                    thumbs_down=False, claim_timeout_s=settings.judge.claim_timeout_s,
                )  # fmt: skip
                first = await job.judge(sampled, advance)
                rest = await job.run_batch(
                    end, since=start, until=end, limit=limit - len(sampled),
                    reason=SampleReason.MANUAL, model=model, progress=advance,
                )  # fmt: skip
            return first, rest
        finally:
            await job.client.close()
            await engine.dispose()

    first, rest = asyncio.run(go())
    judged = first.claimed + rest.claimed
    click.echo(
        f"judged {judged} requests ({first.claimed} waiting samples, {rest.claimed} random): "
        f"{first.scored + rest.scored} scored, {first.errors + rest.errors} errors, "
        f"{first.unjudgeable + rest.unjudgeable} not judgeable (bodies not stored), "
        f"{first.unavailable + rest.unavailable} left for later (judge unavailable)"
    )
    for note in rest.notes:
        click.echo(f"note: {note}")
    if judged == 0:
        click.echo("nothing to judge in that window (already judged, or no successful completions)")


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
    from sidecar.store.baselines import set_drift_baselines, set_quality_baselines
    from sidecar.store.engine import create_engine

    settings = _settings(config_path, database_url, "judge")
    start, end = _window(since, until)

    async def go() -> Any:
        engine = create_engine(settings.database.url)
        try:
            now = datetime.now(UTC)
            if kind == "quality":
                return await set_quality_baselines(
                    engine, since=start, until=end, now=now,
                    confidence=settings.judge.confidence, model=model,
                )  # fmt: skip
            return await set_drift_baselines(engine, since=start, until=end, now=now, model=model)
        finally:
            await engine.dispose()

    baselines = asyncio.run(go())
    fresh = [b for b in baselines if b.since == start and b.until == end]
    if not fresh:
        what = "judge scores" if kind == "quality" else "requests"
        raise click.ClickException(
            f"no {what} between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC"
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
    from sidecar.store.engine import create_engine

    settings = _settings(config_path, database_url)

    async def go() -> Any:
        engine = create_engine(settings.database.url)
        try:
            async with engine.connect() as connection:
                return [*await active_baselines(connection, QUALITY),
                        *await active_baselines(connection, DRIFT)]  # fmt: skip
        finally:
            await engine.dispose()

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
    from sidecar.store.engine import create_engine

    settings = _settings(config_path, database_url, "drift")

    async def go() -> Any:
        engine = create_engine(settings.database.url)
        try:
            return await run_drift(
                engine, settings.drift, SidecarMetrics(), datetime.now(UTC), force=True
            )
        finally:
            await engine.dispose()

    checks = asyncio.run(go())
    if checks is None:
        raise click.ClickException("another sidecar is running a drift check right now; retry")
    if not checks:
        click.echo("no answered requests with drift features in the current window")
    for check in checks:
        drifted = [result.feature for result in check.results if result.drifted]
        undecided = sum(1 for result in check.results if result.drifted is None)
        click.echo(
            f"model={check.model} adapter={check.adapter or '-'} vs {check.reference.kind} "
            f"reference: {', '.join(drifted) or 'no drift'}"
            + (f" ({undecided} features without enough data)" if undecided else "")
        )
    click.echo("details: sidecar report drift --since 1h")
