"""Helpers shared by tests: sidecar settings for a test, reading logged rows, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from sidecar.store.tables import requests_table
from sidecar.testing.harness import sidecar_settings

__all__ = ["fetch_rows", "sidecar_settings", "sync_url", "wait_for", "wait_for_rows"]

T = TypeVar("T")


def sync_url(url: str) -> str:
    """A synchronous driver URL for reading rows from a test."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def fetch_rows(database_url: str, where: str = "1=1", **params: Any) -> list[dict[str, Any]]:
    """Rows of ``requests`` as dicts, typed by the model (JSON decoded on SQLite too)."""
    table = requests_table
    engine = sa.create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            query = sa.select(table).where(sa.text(where)).order_by(table.c.started_at, table.c.id)
            return [dict(row._mapping) for row in connection.execute(query, params)]
    finally:
        engine.dispose()


def wait_for(check: Callable[[], T | None], timeout_s: float = 20.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


def wait_for_rows(
    database_url: str, count: int, where: str = "1=1", **params: Any
) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        try:
            rows = fetch_rows(database_url, where, **params)
        except sa.exc.ProgrammingError:  # the sidecar has not created the table yet
            return None
        return rows if len(rows) >= count else None

    return wait_for(enough, what=f"{count} logged rows where {where}")
