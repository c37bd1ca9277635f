"""``sidecar db upgrade|current``: the schema (Alembic migrations; Postgres or SQLite)."""

from __future__ import annotations

import click

from sidecar.cli.common import CONTEXT, config_option, database_option, load
from sidecar.errors import ConfigError


@click.group(context_settings=CONTEXT)
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
