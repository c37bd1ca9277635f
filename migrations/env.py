"""Alembic environment for the sidecar: Postgres (asyncpg) or SQLite (aiosqlite).

``sidecar.store.migrate`` hands in an open connection (``config.attributes["connection"]``).
Run through the ``alembic`` command instead (``alembic -c alembic.ini revision --autogenerate``),
the URL comes from ``-x database_url=...``, ``sqlalchemy.url``, or the sidecar's settings
(``SIDECAR_DATABASE_URL`` / the default SQLite file), and a plain URL is fine.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from alembic.autogenerate.api import AutogenContext

from sidecar.settings import load_settings
from sidecar.store.engine import create_engine, driver_url
from sidecar.store.tables import UtcDateTime, metadata

config = context.config


def configured_url() -> str:
    url = (
        config.attributes.get("database_url")
        or context.get_x_argument(as_dictionary=True).get("database_url")
        or config.get_main_option("sqlalchemy.url")
        or load_settings().database.url
    )
    return str(url)


def render_item(type_: str, item: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render the models' own column types as plain SQLAlchemy types in new revisions."""
    if type_ == "type" and isinstance(item, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def configure(**options: Any) -> None:
    context.configure(
        target_metadata=metadata,
        compare_type=True,
        render_item=render_item,
        **options,
    )


def run_with_connection(connection: sa.Connection) -> None:
    configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def run_with_new_engine(url: str) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_with_connection)
    finally:
        await engine.dispose()


def run_offline(url: str) -> None:
    async_url = sa.make_url(driver_url(url))
    configure(
        url=async_url,
        literal_binds=True,
        render_as_batch=async_url.get_backend_name() == "sqlite",
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_with_connection(connection)
elif context.is_offline_mode():
    run_offline(configured_url())
else:
    asyncio.run(run_with_new_engine(configured_url()))
