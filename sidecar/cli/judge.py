"""``sidecar judge run``: score logged requests now."""

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
    from sidecar.metrics import SidecarMetrics
    from sidecar.records import SampleReason
    from sidecar.store.judgements import claim_samples

    settings = load_for_database(config_path, database_url, "judge")
    window = parse_window(since, until, model=model)
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
        async with open_engine(settings) as engine:
            job = JudgeJob(engine, settings.judge, SidecarMetrics(), JudgeClient(settings.judge),
                           rubrics=rubrics)  # fmt: skip
            try:
                with Progress(transient=True) as progress:
                    task = progress.add_task("judging", total=limit)
                    advance = lambda count: progress.advance(task, count)  # noqa: E731
                    lookback_s = (datetime.now(UTC) - window.since).total_seconds()
                    sampled = await claim_samples(
                        engine, replica=job.replica, now=window.until, lookback_s=lookback_s, limit=limit,
                        thumbs_down=False, claim_timeout_s=settings.judge.claim_timeout_s,
                    )  # fmt: skip
                    first = await job.judge(sampled, advance)
                    rest = await job.run_batch(
                        window.until, window=window, limit=limit - len(sampled),
                        reason=SampleReason.MANUAL, progress=advance,
                    )  # fmt: skip
                return first, rest
            finally:
                await job.client.close()

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
