"""Postgres session advisory locks: scheduled work that one replica at a time may run."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


@contextlib.asynccontextmanager
async def session_lock(engine: AsyncEngine, key: int) -> AsyncIterator[AsyncConnection | None]:
    """A connection holding lock ``key`` for the block (across its transactions), or None when
    another replica holds it. SQLite has one process: always granted."""
    async with engine.connect() as connection:
        if connection.dialect.name != "postgresql":
            yield connection
            return
        locked = await connection.scalar(sa.select(sa.func.pg_try_advisory_lock(key)))
        await connection.commit()
        if not locked:
            yield None
            return
        try:
            yield connection
        finally:
            await connection.rollback()
            await connection.scalar(sa.select(sa.func.pg_advisory_unlock(key)))
            await connection.commit()
