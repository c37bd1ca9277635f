"""Advisory locks: one holder at a time on Postgres, always granted on SQLite."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.store.locks import LockKey, session_lock, transaction_lock


def test_every_lock_key_is_distinct() -> None:
    assert len({int(key) for key in LockKey}) == len(LockKey)


async def test_a_session_lock_has_one_holder_at_a_time(engine: AsyncEngine) -> None:
    async with session_lock(engine, LockKey.DRIFT) as first:
        assert first is not None
        async with session_lock(engine, LockKey.DRIFT) as second:
            if engine.dialect.name == "postgresql":
                assert second is None
            else:
                assert second is not None  # SQLite: one process, always granted
        async with session_lock(engine, LockKey.JUDGE_BATCH) as other:
            assert other is not None  # another key is another lock
    async with session_lock(engine, LockKey.DRIFT) as again:
        assert again is not None  # released when the block ended


async def test_a_transaction_lock_is_held_until_the_transaction_ends(engine: AsyncEngine) -> None:
    postgres = engine.dialect.name == "postgresql"
    async with engine.begin() as first:
        assert await transaction_lock(first, LockKey.ALERTS)
        async with engine.begin() as second:
            assert await transaction_lock(second, LockKey.ALERTS) is not postgres
    async with engine.begin() as later:
        assert await transaction_lock(later, LockKey.ALERTS)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_session_lock_is_seen_by_a_transaction_lock_on_the_same_key(
    engine: AsyncEngine,
) -> None:
    async with session_lock(engine, LockKey.ALERTS) as holder, engine.begin() as connection:
        assert holder is not None
        assert not await transaction_lock(connection, LockKey.ALERTS)
