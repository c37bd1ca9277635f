"""Helpers shared by tests: sidecar settings for a test, reading logged rows, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from sidecar.settings import Settings, load_settings
from sidecar.store.tables import requests_table

T = TypeVar("T")


def sidecar_settings(
    upstream_url: str, database_url: str, spool_dir: Path, **sections: dict[str, Any]
) -> Settings:
    """Settings for a sidecar under test: free ports, a private spool, a fast writer."""
    overrides: dict[str, dict[str, Any]] = {
        "proxy": {"host": "127.0.0.1", "port": 0},
        "admin": {"port": 0},
        "upstream": {"url": upstream_url, "models_refresh_s": 0.5},
        "database": {"url": database_url},
        "spool": {"dir": str(spool_dir)},
        # Rows built in-process: a worker process per test sidecar would cost ~1 s of CPU each.
        # The subprocess tests (durability, replicas) and test_rowworkers cover the workers.
        "writer": {"idle_poll_s": 0.05, "retry_initial_s": 0.05, "retry_max_s": 0.5, "workers": 0},
    }
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return load_settings(env={}, overrides=overrides)


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
