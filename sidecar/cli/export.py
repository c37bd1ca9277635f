"""``sidecar export training-data``: hard cases as fine-tuning JSONL."""

from __future__ import annotations

import asyncio
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


@click.group(context_settings=CONTEXT)
def export() -> None:
    """Export logged traffic (fine-tuning data for the next retraining)."""


@export.command("training-data", context_settings=CONTEXT)
@click.option("--since", default="90d", show_default=True, help="Start: 7d, 90d or an ISO time.")
@click.option("--until", help="End (default now).")
@click.option(
    "--select", "selection", type=click.Choice(["hard", "good", "low-score", "all"]),
    default="hard", show_default=True,
    help="hard: failed schema, thumbs-down, escalated, low judge score; good: satisfied users, "
    "no hard reason; low-score: judge score at most --max-score; all.",
)  # fmt: skip
@click.option(
    "--max-score", default=3.0, show_default=True, type=float,
    help="A judge score at or below this is low (the rubric's scale: 1-5 for the built-in).",
)  # fmt: skip
@click.option("--model", help="Only this model name (as requested).")
@click.option("--adapter", help="Only this LoRA adapter.")
@click.option(
    "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="JSONL file to write."
)
@click.option(
    "--holdout", default=0.0, show_default=True, type=click.FloatRange(0.0, 0.9),
    help="Share of prompts written to OUT's .holdout.jsonl twin instead (a stable split).",
)  # fmt: skip
@config_option
@database_option
def training_data(
    since: str,
    until: str | None,
    selection: str,
    max_score: float,
    model: str | None,
    adapter: str | None,
    out_path: str,
    holdout: float,
    config_path: str | None,
    database_url: str | None,
) -> None:
    """Write chat examples as OpenAI fine-tuning JSONL ({"messages": [...]}), deduplicated by prompt."""
    from contextlib import ExitStack
    from pathlib import Path

    from rich.progress import Progress

    from sidecar.reports.export import count_candidates, export_training_data

    window = parse_window(since, until, model=model, adapter=adapter)
    settings = load(config_path, uses=("database",), database={"url": database_url})
    require_schema(settings)
    out = Path(out_path)
    holdout_path = out.with_suffix(".holdout.jsonl") if holdout else None

    async def run(sink: Any, held: Any) -> Any:
        async with open_engine(settings) as engine:
            with Progress(transient=True) as progress:
                task = progress.add_task("exporting", total=await count_candidates(engine, window))
                return await export_training_data(
                    engine, window, selection, sink, held, holdout,  # type: ignore[arg-type]
                    on_row=lambda: progress.advance(task), max_score=max_score,
                )  # fmt: skip

    with ExitStack() as files:
        try:  # a bad path fails before any database work
            sink = files.enter_context(out.open("wb"))
            held = files.enter_context(holdout_path.open("wb")) if holdout_path else None
        except OSError as exc:
            raise click.ClickException(f"cannot write {exc.filename}: {exc.strerror}") from exc
        summary = asyncio.run(run(sink, held))
    click.echo(f"wrote {summary.written} examples to {out}")
    if holdout_path:
        click.echo(f"wrote {summary.holdout} held-out examples to {holdout_path}")
    reasons = ", ".join(f"{name} {count}" for name, count in summary.reasons.most_common())
    click.echo(f"by reason: {reasons or 'none'}; duplicate prompts skipped: {summary.duplicates}")
    for why, count in summary.skipped.items():
        click.echo(f"skipped {count}: {why}")
    if selection == "low-score" and not summary.reasons:
        click.echo(f"no judge score at or below {max_score:g} in this window "
                   "(is the judge on? docs/judge.md)")  # fmt: skip
