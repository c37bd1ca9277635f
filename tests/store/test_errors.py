"""The store's error seam: outages become StoreUnavailable, bad data stays what it was."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.errors import StoreUnavailable
from sidecar.store.engine import create_engine
from sidecar.store.errors import describe, is_connectivity_error, translated_errors, translating
from sidecar.store.tables import feedback_table
from tests.store.test_writes import closed_port, join_failed_aiosqlite_threads


def unreachable_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'missing-folder' / 'sidecar.db'}"
    return f"postgresql://root@127.0.0.1:{closed_port()}/sidecar"


@translating
async def run(engine: AsyncEngine, *statements: str | sa.Executable) -> None:
    """Run ``statements`` in one transaction, through the seam."""
    async with engine.begin() as connection:
        for statement in statements:
            await connection.execute(
                sa.text(statement) if isinstance(statement, str) else statement
            )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_database_that_cannot_be_reached_becomes_store_unavailable(
    backend: str, tmp_path: Path
) -> None:
    engine = create_engine(unreachable_url(backend, tmp_path))
    try:
        with pytest.raises(StoreUnavailable, match=r"^database unreachable: \w+") as raised:
            await run(engine, "SELECT 1")
        assert raised.value.__cause__ is not None
        assert is_connectivity_error(raised.value.__cause__)
        assert "SELECT" not in str(raised.value)  # the driver's first line, never the SQL
    finally:
        await engine.dispose()
        join_failed_aiosqlite_threads()


async def test_a_value_the_database_refuses_passes_through_unchanged(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    orphan = {"request_id": "no-such-request", "user_id": "", "rating": "up", "score": 5,
              "satisfied": True, "escalated": False, "created_at": now, "updated_at": now}  # fmt: skip
    with pytest.raises(sa.exc.IntegrityError) as raised:  # the foreign key, on both backends
        await run(engine, sa.insert(feedback_table).values(orphan))
    assert not is_connectivity_error(raised.value)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_connection_the_server_terminates_becomes_store_unavailable(
    engine: AsyncEngine,
) -> None:
    with pytest.raises(StoreUnavailable, match="database unreachable"):
        await run(engine, "SELECT pg_terminate_backend(pg_backend_pid())", "SELECT 1")
    async with engine.connect() as connection:  # the pool hands out a live connection again
        assert await connection.scalar(sa.text("SELECT 1")) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_sqlite_file_another_writer_holds_becomes_store_unavailable(
    engine: AsyncEngine, migrated_database_url: str
) -> None:
    holder = sqlite3.connect(sa.make_url(migrated_database_url).database or "", timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable, match="database is locked"):
            await run(engine, "PRAGMA busy_timeout=0", "DELETE FROM alert_silences")
    finally:
        holder.rollback()
        holder.close()


async def test_store_unavailable_is_not_wrapped_twice() -> None:
    original = StoreUnavailable("database unreachable: ConnectionRefusedError: refused")
    with pytest.raises(StoreUnavailable) as raised, translated_errors():
        raise original
    assert raised.value is original


async def test_translating_wraps_a_coroutine_function() -> None:
    @translating
    async def refused(answer: int) -> int:
        if answer:
            return answer
        raise ConnectionRefusedError(111, "Connection refused")

    assert refused.__name__ == "refused"
    assert await refused(42) == 42
    with pytest.raises(StoreUnavailable, match="ConnectionRefusedError"):
        await refused(0)


def test_describe_names_the_driver_error_not_the_statement() -> None:
    wrapped = sa.exc.OperationalError(
        "INSERT INTO requests VALUES (:body)",
        {"body": "secret"},
        sqlite3.OperationalError("disk I/O error\nmore"),
    )
    assert describe(wrapped) == "OperationalError: disk I/O error"


class _Sqlstate(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"error {sqlstate}")
        self.sqlstate = sqlstate


def _wrapped(orig: Exception, params: dict[str, Any] | None = None) -> sa.exc.DBAPIError:
    return sa.exc.DBAPIError("INSERT INTO requests ...", params or {}, orig)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True),
        (ConnectionResetError(104, "Connection reset by peer"), True),
        (TimeoutError(), True),
        (sa.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"), True),
        (_wrapped(_Sqlstate("57P01")), True),  # admin shutdown
        (_wrapped(_Sqlstate("57P03")), True),  # the database system is starting up
        (_wrapped(_Sqlstate("08006")), True),  # connection failure
        (_wrapped(_Sqlstate("53300")), True),  # too many connections
        (_wrapped(_Sqlstate("25006")), True),  # read-only transaction
        (_wrapped(_Sqlstate("23502")), False),  # not-null violation
        (_wrapped(_Sqlstate("22001")), False),  # value too long
        (_wrapped(_Sqlstate("42P01")), False),  # undefined table
        (ValueError("invalid input for query argument $3: 'connection refused'"), False),
        (_wrapped(ValueError("bad"), {"body": "server closed the connection"}), False),
        (KeyError("id"), False),
    ],
)
def test_is_connectivity_error_tells_outages_from_bad_data(
    exc: BaseException, expected: bool
) -> None:
    assert is_connectivity_error(exc) is expected


def test_an_unrelated_earlier_error_does_not_make_bad_data_an_outage() -> None:
    bad_data = _wrapped(_Sqlstate("23502"))
    bad_data.__context__ = ConnectionResetError("raised and handled earlier")
    assert not is_connectivity_error(bad_data)


def test_an_outage_wrapped_by_another_exception_is_still_an_outage() -> None:
    outer = RuntimeError("while writing")
    outer.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert is_connectivity_error(outer)
