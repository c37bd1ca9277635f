"""Postgres advisory locks: work that one replica at a time may do ("once across replicas").

Every key is in :class:`LockKey`, so no two jobs can pick the same one by accident. Two shapes:
:func:`session_lock` holds a lock across the transactions of a block (a drift run, the judge
batch: they commit as they go); :func:`transaction_lock` holds it until the current transaction
ends (an alert round, a migration). SQLite has one process: both are always granted.
"""

from __future__ import annotations

import contextlib
import enum
import zlib
from collections.abc import AsyncIterator

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sidecar.store.errors import translated_errors


class LockKey(enum.IntEnum):
    """The advisory lock keys (64-bit integers, shared by every database user on the server)."""

    ALERTS = 0x51DEC4A1  # one replica evaluates alerts at a time
    JUDGE_BATCH = 0x51DEC4A2  # one replica runs the periodic judge batch
    DRIFT = 0x51DEC4A3  # one replica runs the drift check
    MIGRATION = zlib.crc32(b"sidecar.store.migrate")  # replicas starting together migrate once


@contextlib.asynccontextmanager
async def session_lock(engine: AsyncEngine, key: LockKey) -> AsyncIterator[AsyncConnection | None]:
    """A connection holding lock ``key`` for the block (across its transactions), or None when
    another replica holds it."""
    async with contextlib.AsyncExitStack() as stack:
        with translated_errors():
            connection = await stack.enter_async_context(engine.connect())
        if connection.dialect.name != "postgresql":
            yield connection
            return
        with translated_errors():
            locked = await connection.scalar(sa.select(sa.func.pg_try_advisory_lock(int(key))))
            await connection.commit()
        if not locked:
            yield None
            return
        try:
            yield connection
        finally:
            await connection.rollback()
            await connection.scalar(sa.select(sa.func.pg_advisory_unlock(int(key))))
            await connection.commit()


async def transaction_lock(
    connection: AsyncConnection, key: LockKey, *, wait: bool = False
) -> bool:
    """Take lock ``key`` until ``connection``'s transaction ends: True when held; False when
    another replica holds it (``wait``: block until it is free instead)."""
    if connection.dialect.name != "postgresql":
        return True
    with translated_errors():
        if wait:
            await connection.execute(sa.select(sa.func.pg_advisory_xact_lock(int(key))))
            return True
        return bool(await connection.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(int(key)))))
