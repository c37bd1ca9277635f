from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.errors import StoreUnavailable
from sidecar.records import LoggedRequest
from sidecar.store.engine import create_engine
from sidecar.store.errors import is_connectivity_error
from sidecar.store.migrate import upgrade
from sidecar.store.tables import requests_table
from sidecar.store.writes import insert_requests, sanitize_json
from sidecar.testing.factories import logged_request as make_row
from sidecar.testing.tcp_relay import tcp_relay


async def stored(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with engine.connect() as connection:
        result = await connection.execute(sa.select(requests_table))
        return {row.id: dict(row._mapping) for row in result}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_logged_request_field_has_a_column() -> None:
    fields = [field.name for field in dataclasses.fields(LoggedRequest)]
    assert [column.name for column in requests_table.columns] == [*fields, "logged_at"]


async def test_inserted_rows_read_back_field_by_field(engine: AsyncEngine) -> None:
    rows = [
        make_row(),
        make_row(
            client_request_id=None,
            completion_id=None,
            stream=True,
            ttft_ms=55.5,
            adapter=None,
            model="tiny",
            status=502,
            request_body="not json at all",
            response_body=None,
            error_kind="upstream_unreachable",
            error_message="connection refused",
            cancelled=True,
            body_policy="redacted",
            schema_name=None,
            schema_verdict=None,
            schema_error_count=None,
            schema_errors=None,
            started_at=datetime(2025, 5, 1, 10, 0, 1, tzinfo=UTC),
        ),
        make_row(
            schema_verdict="invalid",
            schema_error_count=1,
            schema_errors=[{"path": "/priority", "message": "'urgent' is not one of [...]"}],
            response_body={"big": 2**40, "deep": [[[{"x": [1.5, None, False]}]]]},
            started_at=datetime(2025, 5, 1, 3, 0, 0),  # naive: taken as UTC
        ),
    ]
    before = datetime.now(UTC) - timedelta(minutes=1)
    assert await insert_requests(engine, rows) == 3

    by_id = await stored(engine)
    assert set(by_id) == {row.id for row in rows}
    for row in rows:
        read = by_id[row.id]
        for name, value in row.as_row().items():
            if name == "started_at":
                continue
            assert read[name] == value, name
        assert read["started_at"].utcoffset() == timedelta(0)
        assert read["logged_at"].utcoffset() == timedelta(0)
        assert read["logged_at"] >= before
    assert by_id[rows[0].id]["started_at"] == datetime(2025, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert by_id[rows[2].id]["started_at"] == datetime(2025, 5, 1, 3, 0, tzinfo=UTC)


async def test_missing_bodies_are_sql_null_not_json_null(engine: AsyncEngine) -> None:
    await insert_requests(engine, [make_row(request_body=None, response_body=None)])
    async with engine.connect() as connection:
        nulls = await connection.scalar(
            sa.text("SELECT count(*) FROM requests WHERE request_body IS NULL")
        )
    assert nulls == 1


async def test_time_windows_compare_instants_whatever_the_offset(engine: AsyncEngine) -> None:
    tz_minus_5 = timezone(timedelta(hours=-5))
    rows = [
        make_row(started_at=datetime(2025, 5, 1, 9, 59, tzinfo=UTC)),
        make_row(started_at=datetime(2025, 5, 1, 5, 30, tzinfo=tz_minus_5)),  # 10:30 UTC
        make_row(started_at=datetime(2025, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))),
    ]
    await insert_requests(engine, rows)
    since = datetime(2025, 5, 1, 6, 0, tzinfo=timezone(timedelta(hours=-4)))  # 10:00 UTC
    async with engine.connect() as connection:
        result = await connection.execute(
            sa.select(requests_table.c.id)
            .where(requests_table.c.started_at >= since)
            .order_by(requests_table.c.started_at)
        )
        assert list(result.scalars()) == [rows[2].id, rows[1].id]


async def test_sqlite_keeps_timestamps_as_sortable_utc_text(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'utc.db'}"
    upgrade(url)
    engine = create_engine(url)
    try:
        await insert_requests(engine, [make_row()])
        async with engine.connect() as connection:
            text = await connection.scalar(sa.text("SELECT started_at FROM requests"))
    finally:
        await engine.dispose()
    assert text == "2025-05-01 10:00:00.123456"


async def test_replaying_a_batch_inserts_nothing_and_duplicates_nothing(
    engine: AsyncEngine,
) -> None:
    batch = [make_row() for _ in range(5)]
    assert await insert_requests(engine, batch) == 5
    assert await insert_requests(engine, batch) == 0
    changed = dataclasses.replace(batch[0], status=500)  # a replay never overwrites
    newcomer = make_row()
    assert await insert_requests(engine, [changed, *batch[1:3], newcomer]) == 1
    by_id = await stored(engine)
    assert len(by_id) == 6
    assert by_id[batch[0].id]["status"] == 200


async def test_a_repeated_id_within_one_batch_keeps_the_first(engine: AsyncEngine) -> None:
    first = make_row()
    assert await insert_requests(engine, [first, dataclasses.replace(first, status=418)]) == 1
    assert (await stored(engine))[first.id]["status"] == 200


async def test_an_empty_batch_inserts_nothing(engine: AsyncEngine) -> None:
    assert await insert_requests(engine, []) == 0


async def test_a_large_batch_is_stored_whole(engine: AsyncEngine) -> None:
    batch = [make_row() for _ in range(4500)]  # several statements' worth on both backends
    assert await insert_requests(engine, batch) == 4500
    assert await insert_requests(engine, batch) == 0
    assert len(await stored(engine)) == 4500


async def test_nul_characters_are_stored_as_replacement_characters(engine: AsyncEngine) -> None:
    row = make_row(
        error_message="bad\x00byte",
        model="m\x00",
        request_body={"messages": [{"content": "a\x00b"}], "k\x00": ["\x00"]},
        response_body="plain\x00text",
        schema_errors=[{"path": "/x", "message": "\x00"}],
    )
    assert await insert_requests(engine, [row]) == 1
    read = (await stored(engine))[row.id]
    assert read["error_message"] == "bad\ufffdbyte"
    assert read["model"] == "m\ufffd"
    assert read["request_body"] == {"messages": [{"content": "a\ufffdb"}], "k\ufffd": ["\ufffd"]}
    assert read["response_body"] == "plain\ufffdtext"
    assert read["schema_errors"] == [{"path": "/x", "message": "\ufffd"}]


def test_sanitize_json_returns_clean_documents_untouched() -> None:
    document = {"a": ["b", {"c": 1}], "d": None}
    assert sanitize_json(document) is document
    escaped = {"text": "\\u0000 is six characters here, not a NUL"}
    assert sanitize_json(escaped) == escaped
    huge = {"n": 2**80, "s": "x\x00"}  # orjson refuses the integer: the slow path still works
    assert sanitize_json(huge) == {"n": 2**80, "s": "x\ufffd"}


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys included, in document order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children)
        | st.dictionaries(st.text(st.characters(exclude_characters="\ufffd")), children)
    ),
    max_leaves=20,
)


@given(json_values)
def test_sanitize_json_replaces_every_nul_and_changes_nothing_else(value: Any) -> None:
    cleaned = sanitize_json(value)
    assert list(strings_in(cleaned)) == [s.replace("\x00", "\ufffd") for s in strings_in(value)]
    if not any("\x00" in s for s in strings_in(value)):
        assert cleaned == value


async def test_a_value_the_database_refuses_propagates_as_it_is(engine: AsyncEngine) -> None:
    with pytest.raises(sa.exc.IntegrityError) as raised:
        await insert_requests(engine, [make_row(), make_row(method=None)])
    assert not is_connectivity_error(raised.value)
    assert await stored(engine) == {}  # one transaction: nothing of the batch was kept


@pytest.mark.postgres
async def test_an_out_of_range_value_is_a_data_error_on_postgres(
    make_postgres_database: Callable[[], str],
) -> None:
    url = make_postgres_database()
    upgrade(url)
    engine = create_engine(url)
    try:
        with pytest.raises(sa.exc.DBAPIError) as raised:
            await insert_requests(
                engine, [make_row(prompt_tokens=2**40, error_message="connection refused")]
            )
        assert not isinstance(raised.value, StoreUnavailable)
        assert not is_connectivity_error(raised.value)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_an_unreachable_database_raises_store_unavailable(
    backend: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'missing-folder' / 'sidecar.db'}"
    else:
        url = f"postgresql://root@127.0.0.1:{closed_port()}/sidecar"
    engine = create_engine(url)
    try:
        with pytest.raises(StoreUnavailable, match="database unreachable") as raised:
            await insert_requests(engine, [make_row()])
        assert raised.value.__cause__ is not None
        assert is_connectivity_error(raised.value.__cause__)
    finally:
        await engine.dispose()
        join_failed_aiosqlite_threads()


def join_failed_aiosqlite_threads() -> None:
    """aiosqlite (0.22) answers a failed connect from its worker thread a moment later; let it
    finish while this test's event loop is still open (else: "Event loop is closed" in a thread).
    """
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)"):
            thread.join(5)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung database)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


async def test_a_silent_server_is_noticed_within_the_connect_timeout(silent_server: int) -> None:
    engine = create_engine(f"postgresql://root@127.0.0.1:{silent_server}/x", connect_timeout_s=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable):
            await insert_requests(engine, [make_row()])
    finally:
        await engine.dispose()
    assert time.monotonic() - started < 5


@pytest.mark.postgres
async def test_a_cut_connection_raises_store_unavailable_and_recovers(
    make_postgres_database: Callable[[], str],
) -> None:
    url = make_postgres_database()
    upgrade(url)
    parts = urlsplit(url)
    with tcp_relay(parts.hostname or "127.0.0.1", parts.port or 5432) as relay:
        engine = create_engine(url.replace(f":{parts.port}/", f":{relay.port}/"))
        try:
            assert await insert_requests(engine, [make_row()]) == 1
            relay.cut()
            batch = [make_row(), make_row()]
            with pytest.raises(StoreUnavailable):
                await insert_requests(engine, batch)
            relay.restore()
            assert await insert_requests(engine, batch) == 2
        finally:
            await engine.dispose()


@pytest.mark.postgres
async def test_terminated_connections_are_replaced_transparently(
    make_postgres_database: Callable[[], str], postgres_admin_url: str
) -> None:
    url = make_postgres_database()
    upgrade(url)
    engine = create_engine(url)
    try:
        assert await insert_requests(engine, [make_row()]) == 1
        admin = sa.create_engine(
            postgres_admin_url.replace("postgresql://", "postgresql+psycopg://")
        )
        with admin.connect() as connection:
            killed = connection.scalar(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = :name"
                ),
                {"name": urlsplit(url).path.lstrip("/")},
            )
        admin.dispose()
        assert killed >= 1
        assert await insert_requests(engine, [make_row()]) == 1  # pool_pre_ping reconnects
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_read_only_server_raises_store_unavailable(
    make_postgres_database: Callable[[], str], postgres_admin_url: str
) -> None:
    """A demoted primary after a failover accepts connections but refuses writes."""
    url = make_postgres_database()
    upgrade(url)
    name = urlsplit(url).path.lstrip("/")
    admin = sa.create_engine(
        postgres_admin_url.replace("postgresql://", "postgresql+psycopg://"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as connection:
        connection.execute(
            sa.text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        )
    admin.dispose()
    engine = create_engine(url)
    try:
        with pytest.raises(StoreUnavailable, match=r"ReadOnlySqlTransaction|read-only"):
            await insert_requests(engine, [make_row()])
    finally:
        await engine.dispose()


@pytest.mark.slow
async def test_insert_throughput(engine: AsyncEngine, capsys: pytest.CaptureFixture[str]) -> None:
    """Prints rows/s for realistic rows (~1.8 kB of bodies); asserts only that all were stored."""
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "triaged"]

    def text(count: int) -> str:
        return " ".join(words[(i * 7) % len(words)] for i in range(count))

    rows = [
        make_row(
            request_body={
                "model": "support-lora",
                "messages": [
                    {"role": "system", "content": text(40)},
                    {"role": "user", "content": text(100) + str(i)},
                ],
                "max_tokens": 256,
            },
            response_body={
                "id": f"chatcmpl-{i}",
                "object": "chat.completion",
                "model": "support-lora",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text(120)}}],
                "usage": {"prompt_tokens": 180, "completion_tokens": 150, "total_tokens": 330},
            },
        )
        for i in range(10_000)
    ]
    started = time.perf_counter()
    inserted = 0
    for start in range(0, len(rows), 1000):
        inserted += await insert_requests(engine, rows[start : start + 1000])
    elapsed = time.perf_counter() - started
    assert inserted == len(rows)
    with capsys.disabled():
        print(f"\n{engine.dialect.name}: {inserted / elapsed:,.0f} rows/s ({inserted} rows)")
