"""Pieces shared by the command-line modules: options, settings, the schema check, the engine."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from sidecar.errors import ConfigError
from sidecar.records import TimeWindow
from sidecar.settings import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), envvar="SIDECAR_CONFIG",
    help="YAML configuration file (default: $SIDECAR_CONFIG; every key is optional).",
)  # fmt: skip
database_option = click.option(
    "--database-url", help="postgresql://user@host:5432/db or sqlite:///path.db (overrides config)."
)


def load(
    config_path: str | None, *, uses: tuple[str, ...] | None = None, **overrides: dict[str, Any]
) -> Settings:
    """The settings, or a one-line error. ``uses``: the sections this command reads; an unset
    ``${VAR}`` in another section is a warning (on stderr), not an error. ``None`` (``serve``,
    ``check-config``): every section counts."""
    try:
        return load_settings(config_path, overrides=overrides, sections_used=uses, warn=_warn)
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from exc


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def require_schema(settings: Settings) -> None:
    from sidecar.store.migrate import current, head

    if current(settings.database.url) != head():
        raise click.ClickException(
            f"the database at {settings.database.url} is not at the latest schema; "
            "run `sidecar db upgrade` (or start `sidecar serve`) first"
        )


def load_for_database(config_path: str | None, database_url: str | None, *uses: str) -> Settings:
    """The settings of a command that reads the ``database`` section (and ``uses``), at the
    latest schema."""
    settings = load(config_path, uses=("database", *uses), database={"url": database_url})
    require_schema(settings)
    return settings


def parse_window(
    since: str, until: str | None, *, model: str | None = None, adapter: str | None = None
) -> TimeWindow:
    """``--since``/``--until`` (a duration ago or an ISO time; until defaults to now) as a
    window, narrowed to ``--model``/``--adapter`` when given."""
    from sidecar.reports.base import parse_since

    now = datetime.now(UTC)
    try:
        return TimeWindow(
            parse_since(since, now), parse_since(until, now) if until else now, model, adapter
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@contextlib.asynccontextmanager
async def open_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The database engine of one command, disposed however the command ends."""
    from sidecar.store.engine import create_engine

    engine = create_engine(settings.database.url)
    try:
        yield engine
    finally:
        await engine.dispose()
