"""Database fixtures shared by every test: throwaway Postgres databases and SQLite files.

``database_url`` runs a test twice, on SQLite and on Postgres (``-m "not postgres"`` deselects
the second). Postgres comes from ``SIDECAR_TEST_POSTGRES_URL`` (default
``postgresql://root@127.0.0.1:5432/postgres``); when it cannot be reached, the tests that need it
fail with a message saying so: they are never skipped in silence.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.store.engine import create_engine
from sidecar.store.migrate import upgrade

pytest_plugins = ["sidecar.testing.pytest_plugin"]

POSTGRES_URL_VARIABLE = "SIDECAR_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://root@127.0.0.1:5432/postgres"
TEST_DATABASE_PREFIX = "sidecar_test_"


def plain_postgres_url(url: str) -> str:
    """``url`` without a driver name (``postgresql+asyncpg://`` -> ``postgresql://``)."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """A URL to an existing database on the test server, for creating and dropping others."""
    url = plain_postgres_url(os.environ.get(POSTGRES_URL_VARIABLE) or DEFAULT_POSTGRES_URL)
    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        shown = sa.make_url(url).render_as_string(hide_password=True)
        pytest.fail(
            f"Postgres is needed by this test but is not reachable at {shown}: {exc}".strip()
            + f"\nStart it, or set {POSTGRES_URL_VARIABLE} to a server where this user may "
            'CREATE DATABASE; to run without Postgres, deselect with -m "not postgres".',
            pytrace=False,
        )
    return url


@pytest.fixture
def make_postgres_database(postgres_admin_url: str) -> Iterator[Callable[[], str]]:
    """A factory: each call creates an empty database ``sidecar_test_<hex>`` and returns its
    plain URL. Every database it created is dropped afterwards (connections are terminated)."""
    created: list[str] = []

    def make() -> str:
        name = f"{TEST_DATABASE_PREFIX}{secrets.token_hex(6)}"
        with psycopg.connect(postgres_admin_url, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return sa.make_url(postgres_admin_url).set(database=name).render_as_string(False)

    yield make
    if created:
        with psycopg.connect(postgres_admin_url, autocommit=True) as connection:
            for name in created:
                _drop_database(connection, name)


def _drop_database(connection: psycopg.Connection[tuple[object, ...]], name: str) -> None:
    assert name.startswith(TEST_DATABASE_PREFIX), name  # never anything this fixture did not make
    connection.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    )
    connection.execute(
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    )


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty (not migrated) database: a SQLite file, then a Postgres database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sidecar.db'}"
    make: Callable[[], str] = request.getfixturevalue("make_postgres_database")
    return make()


@pytest.fixture
def migrated_database_url(database_url: str) -> str:
    """``database_url`` with the schema upgraded to the newest migration."""
    upgrade(database_url)
    return database_url


@pytest.fixture
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An :class:`AsyncEngine` on ``migrated_database_url``, disposed after the test."""
    engine = create_engine(migrated_database_url)
    yield engine
    await engine.dispose()
