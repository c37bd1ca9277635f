"""``sidecar serve`` and ``sidecar check-config``."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import click

from sidecar.cli.common import CONTEXT, config_option, database_option, load
from sidecar.errors import ConfigError
from sidecar.logqueue.segments import SpoolLocked
from sidecar.logs import configure_logging


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


@click.command(context_settings=CONTEXT)
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
    from sidecar.server.serve import run_sidecar

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


@click.command("check-config", context_settings=CONTEXT)
@config_option
def check_config(config_path: str | None) -> None:
    """Validate the configuration; exit 0, or name the bad key and the fix."""
    from sidecar.server.preflight import preflight, summary

    settings = load(config_path)
    try:
        checked = preflight(settings)  # the same checks `serve` runs at start
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from exc
    for warning in checked.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"configuration OK: {summary(settings, checked)}")
