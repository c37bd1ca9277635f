"""The ``sidecar`` command line."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Coroutine
from typing import Any

import click

from sidecar.cli_alerts import alerts
from sidecar.cli_analysis import baseline, drift, judge
from sidecar.cli_common import CONTEXT, config_option, database_option, load, require_schema
from sidecar.errors import ConfigError
from sidecar.logqueue.segments import SpoolLocked
from sidecar.logs import configure_logging
from sidecar.settings import Settings


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="vllm-sidecar", prog_name="sidecar")
def main() -> None:
    """Monitoring and drift-detection sidecar for vLLM's OpenAI-compatible server.

    Point your clients at the sidecar's proxy port instead of vLLM: every request
    is relayed unchanged and logged to Postgres (or a SQLite file by default).
    """


@main.command(context_settings=CONTEXT)
@config_option
@click.option("--host", help="Proxy listen address (default 0.0.0.0).")
@click.option("--port", type=int, help="Proxy port (default 8080).")
@click.option(
    "--admin-port", type=int, help="Admin port: /metrics, /healthz, /readyz (default 8081)."
)
@click.option(
    "--upstream", help="vLLM base URL (default $SIDECAR_UPSTREAM_URL or http://127.0.0.1:8000)."
)
@database_option
@click.option("--no-migrate", is_flag=True, help="Do not upgrade the database schema at start.")
def serve(
    config_path: str | None,
    host: str | None,
    port: int | None,
    admin_port: int | None,
    upstream: str | None,
    database_url: str | None,
    no_migrate: bool,
) -> None:
    """Run the proxy and the admin server until SIGTERM or Ctrl-C."""
    from sidecar.serve import run_sidecar

    settings = load(
        config_path,
        proxy={"host": host, "port": port},
        admin={"port": admin_port},
        upstream={"url": upstream},
        database={"url": database_url, "auto_migrate": False if no_migrate else None},
    )
    configure_logging(settings.log_level)
    try:
        _run(run_sidecar(settings))
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from exc
    except SpoolLocked as exc:  # another sidecar runs on this spool: say who, exit 1
        raise click.ClickException(str(exc)) from exc


@main.command("check-config", context_settings=CONTEXT)
@config_option
def check_config(config_path: str | None) -> None:
    """Validate the configuration; exit 0, or name the bad key and the fix."""
    from sidecar.preflight import preflight, summary

    settings = load(config_path)
    try:
        checked = preflight(settings)  # the same checks `serve` runs at start
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from exc
    for warning in checked.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"configuration OK: {summary(settings, checked)}")


@main.group(context_settings=CONTEXT)
def db() -> None:
    """Database schema (Alembic migrations; Postgres or SQLite)."""


@db.command(context_settings=CONTEXT)
@config_option
@database_option
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade(config_path: str | None, database_url: str | None, revision: str) -> None:
    """Upgrade the schema to the latest (or a given) revision."""
    from sidecar.store.engine import create_sqlite_folder
    from sidecar.store.migrate import current
    from sidecar.store.migrate import upgrade as run_upgrade

    url = load(config_path, uses=("database",), database={"url": database_url}).database.url
    try:
        created = create_sqlite_folder(url)
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from exc
    if created is not None:
        click.echo(created)
    run_upgrade(url, revision)
    click.echo(f"database at revision {current(url)}")


@db.command("current", context_settings=CONTEXT)
@config_option
@database_option
def db_current(config_path: str | None, database_url: str | None) -> None:
    """Print the schema revision the database is at."""
    from sidecar.store.migrate import current

    url = load(config_path, uses=("database",), database={"url": database_url}).database.url
    click.echo(current(url) or "empty (run `sidecar db upgrade`)")


@main.command(context_settings=CONTEXT)
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
    from datetime import UTC, datetime

    from rich.console import Console

    from sidecar.reports import render
    from sidecar.reports.base import REPORTS, ReportWindow, parse_since
    from sidecar.reports.catalog import load_reports

    load_reports()
    if list_reports or name is None:
        for known in sorted(REPORTS.values(), key=lambda r: r.name):
            click.echo(f"{known.name:<14} {known.description}")
        return
    if name not in REPORTS:
        raise click.BadParameter(f"unknown report {name!r}; known: {', '.join(sorted(REPORTS))}")
    now = datetime.now(UTC)
    try:
        window = ReportWindow(
            since=parse_since(since, now),
            until=parse_since(until, now) if until else now,
            model=model,
            adapter=adapter,
            group_by=group_by,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    settings = load(config_path, uses=("database", "cost"), database={"url": database_url})
    window = dataclasses.replace(window, cost=settings.cost)
    table = _run_report(settings, name, window)
    if output == "csv":
        click.echo(render.as_csv(table), nl=False)
    elif output == "json":
        click.echo(render.as_json(table))
    else:
        # Piped output keeps every column readable instead of folding to 80 characters.
        render.as_text(table, Console(width=None if sys.stdout.isatty() else 200))


def _run_report(settings: Settings, name: str, window: Any) -> Any:
    from sidecar.reports.base import run_report
    from sidecar.store.engine import create_engine

    require_schema(settings)

    async def go() -> Any:
        engine = create_engine(settings.database.url)
        try:
            return await run_report(
                engine, name, window, timeout_s=settings.database.statement_timeout_s
            )
        finally:
            await engine.dispose()

    return asyncio.run(go())


@main.group(context_settings=CONTEXT)
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
    from datetime import UTC, datetime
    from pathlib import Path

    from rich.progress import Progress

    from sidecar.reports.base import ReportWindow, parse_since
    from sidecar.reports.export import count_candidates, export_training_data
    from sidecar.store.engine import create_engine

    now = datetime.now(UTC)
    try:
        window = ReportWindow(
            parse_since(since, now), parse_since(until, now) if until else now, model, adapter
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    settings = load(config_path, uses=("database",), database={"url": database_url})
    require_schema(settings)
    out = Path(out_path)
    holdout_path = out.with_suffix(".holdout.jsonl") if holdout else None

    async def run(sink: Any, held: Any) -> Any:
        engine = create_engine(settings.database.url)
        try:
            with Progress(transient=True) as progress:
                task = progress.add_task("exporting", total=await count_candidates(engine, window))
                return await export_training_data(
                    engine, window, selection, sink, held, holdout,  # type: ignore[arg-type]
                    on_row=lambda: progress.advance(task), max_score=max_score,
                )  # fmt: skip
        finally:
            await engine.dispose()

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


@main.command(context_settings=CONTEXT)
@click.option("--requests", default=60, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--incident", is_flag=True,
    help="Play an incident instead (~40 s): latency spike, format regression, topic drift; "
    "print each alert as it fires and clears.",
)  # fmt: skip
def demo(requests: int, incident: bool) -> None:
    """Run a fake vLLM and a sidecar in this process, send traffic, print the reports."""
    from rich.console import Console

    from sidecar.demo import run_demo, run_incident_demo
    from sidecar.reports import render

    if incident:
        run_incident_demo(click.echo)
        return
    console = Console(width=None if sys.stdout.isatty() else 200)
    run_demo(requests, lambda table: render.as_text(table, console), click.echo)


@main.command("fake-vllm", context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--model",
    "served_model_name",
    default="tiny",
    show_default=True,
    help="Served base model name.",
)
@click.option("--latency-ms", default=0.0, show_default=True, help="Delay before each response.")
@click.option(
    "--chunk-delay-ms", default=0.0, show_default=True, help="Delay between stream chunks."
)
def fake_vllm(
    host: str, port: int, served_model_name: str, latency_ms: float, chunk_delay_ms: float
) -> None:
    """Run the faithful fake vLLM server (with LoRA adapters `support` and `legal`)."""
    from sidecar.testing.fake_vllm import FakeVllmConfig, serve_fake_vllm

    config = FakeVllmConfig(
        served_model_name=served_model_name,
        latency_s=latency_ms / 1000.0,
        chunk_delay_s=chunk_delay_ms / 1000.0,
    )
    click.echo(
        f"fake vLLM serving {served_model_name} (+ adapters support, legal) on http://{host}:{port}"
    )
    serve_fake_vllm(host, port, config)


main.add_command(alerts)
main.add_command(judge)
main.add_command(baseline)
main.add_command(drift)

if __name__ == "__main__":  # pragma: no cover - `python -m sidecar.cli`
    sys.exit(main())
