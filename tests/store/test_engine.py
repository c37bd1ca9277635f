from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.errors import ConfigError
from sidecar.settings import DATABASE_SCHEMES
from sidecar.store.engine import ASYNC_DRIVERS, create_engine, driver_url, json_dumps, json_loads


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///relative.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///relative.db", "sqlite+aiosqlite"),
        ("postgresql://root@127.0.0.1:5432/db", "postgresql+asyncpg"),
        ("postgres://root@127.0.0.1:5432/db", "postgresql+asyncpg"),
        ("postgresql+psycopg://root@127.0.0.1:5432/db", "postgresql+asyncpg"),
    ],
)
async def test_plain_urls_get_the_async_driver(url: str, driver: str) -> None:
    engine = create_engine(url)
    try:
        assert engine.url.drivername == driver
    finally:
        await engine.dispose()


def test_an_unsupported_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unsupported scheme"):
        create_engine("mysql://root@127.0.0.1/db")


async def test_sqlite_connections_get_wal_and_the_other_pragmas(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'pragmas.db'}")
    try:
        async with engine.connect() as connection:

            async def pragma(name: str) -> object:
                return (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar_one()

            assert await pragma("journal_mode") == "wal"
            assert await pragma("synchronous") == 1  # NORMAL
            assert await pragma("busy_timeout") == 5000
            assert await pragma("foreign_keys") == 1
    finally:
        await engine.dispose()


async def test_in_memory_sqlite_works_without_a_sized_pool() -> None:
    engine = create_engine("sqlite://")
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(sa.text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_statements_are_bounded_by_the_command_timeout(
    make_postgres_database: Callable[[], str],
) -> None:
    engine = create_engine(make_postgres_database(), command_timeout_s=0.2)
    try:
        async with engine.connect() as connection:
            with pytest.raises(TimeoutError):
                await connection.execute(sa.text("SELECT pg_sleep(5)"))
    finally:
        await engine.dispose()


async def test_json_round_trips_through_the_engine(engine: AsyncEngine) -> None:
    document = {"text": "héllo ✓", "nested": [1, 2.5, None, True, {"k": "v"}]}
    async with engine.connect() as connection:
        value = (await connection.execute(sa.select(sa.literal(document, sa.JSON)))).scalar_one()
    assert value == document


def test_json_dumps_falls_back_to_the_standard_library_for_huge_integers() -> None:
    assert json_dumps({"n": 2**70, "s": "é"}) == '{"n": 1180591620717411303424, "s": "é"}'
    assert json_dumps({"n": 1, "s": "é"}) == '{"n":1,"s":"é"}'


def test_json_loads_falls_back_to_the_standard_library_for_what_orjson_refuses() -> None:
    assert json_loads('{"n": 1e400}') == {"n": float("inf")}
    assert json_loads(b'{"n": 1}') == {"n": 1}


def test_plain_database_urls_get_the_async_driver() -> None:
    assert (
        driver_url("postgresql://root@127.0.0.1:5432/db")
        == "postgresql+asyncpg://root@127.0.0.1:5432/db"
    )
    assert driver_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"


def test_every_scheme_the_settings_accept_has_a_driver() -> None:
    assert set(ASYNC_DRIVERS) == set(DATABASE_SCHEMES)
