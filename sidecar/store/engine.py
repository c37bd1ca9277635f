"""The async engine: one place that knows each backend's connection settings.

Plain URLs work (``postgresql://...``, ``sqlite:///path.db``); the async driver is picked by
:func:`driver_url`. JSON goes through orjson both ways (the standard library
takes what orjson refuses).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sidecar.errors import ConfigError
from sidecar.settings import check_database_url

# Each database scheme ``database.url`` accepts (sidecar.settings.DATABASE_SCHEMES) and the
# async driver the sidecar uses for it.
ASYNC_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
)


def create_engine(
    url: str,
    *,
    pool_size: int = 5,
    connect_timeout_s: float = 5.0,
    command_timeout_s: float | None = 30.0,
) -> AsyncEngine:
    """An :class:`AsyncEngine` for ``url`` (plain or async-driver URL).

    Postgres: connections are pinged before use and fail fast (``connect_timeout_s``) so an
    outage is noticed quickly; each statement is bounded by ``command_timeout_s`` (``None``:
    unbounded, for migrations).
    SQLite: WAL journal, ``synchronous=NORMAL``, a 5 s busy timeout and foreign keys, set on
    every new connection.
    """
    parsed = sa.make_url(driver_url(url))
    common: dict[str, Any] = {
        "json_serializer": json_dumps,
        "json_deserializer": json_loads,
    }
    if parsed.get_backend_name() == "sqlite":
        if not is_memory_sqlite(parsed):
            common["pool_size"] = pool_size
        engine = create_async_engine(parsed, **common)
        sa.event.listen(engine.sync_engine, "connect", _apply_sqlite_pragmas)
        return engine
    return create_async_engine(
        parsed,
        pool_size=pool_size,
        pool_pre_ping=True,
        pool_timeout=connect_timeout_s * 2,
        connect_args={"timeout": connect_timeout_s, "command_timeout": command_timeout_s},
        **common,
    )


def driver_url(url: str) -> str:
    """Map a plain database URL to the async driver the sidecar uses.

    ``postgresql://...`` -> ``postgresql+asyncpg://...``;
    ``sqlite:///path`` -> ``sqlite+aiosqlite:///path``. URLs that already name
    one of these drivers pass unchanged.
    """
    check_database_url(url)  # ConfigError: not a URL, or not a database the sidecar uses
    scheme, _, rest = url.partition("://")
    return f"{ASYNC_DRIVERS[scheme.split('+', 1)[0]]}://{rest}"


def is_memory_sqlite(url: sa.URL) -> bool:
    database = url.database or ""
    return database in {"", ":memory:"} or url.query.get("mode") == "memory"


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL; ``None`` for Postgres or an in-memory database.

    ``sqlite:///x.db`` is relative to the current directory (a configuration file's relative
    URL was already made absolute against the file's directory); ``sqlite:////x.db`` is absolute.
    """
    parsed = sa.make_url(driver_url(url))
    if parsed.get_backend_name() != "sqlite" or is_memory_sqlite(parsed):
        return None
    return Path(parsed.database or "")


def create_sqlite_folder(url: str) -> str | None:
    """Create the folder of a SQLite file that does not exist yet; a sentence saying which
    absolute folder was created (``None`` when nothing was)."""
    path = sqlite_file(url)
    if path is None or path.parent.is_dir():
        return None
    folder = path.parent.resolve()
    hint = (
        f" (a relative path, read against {Path.cwd()}; write sqlite:////{path} for an absolute one)"
        if not path.is_absolute()
        else ""
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"database.url: cannot create {folder} for the SQLite file ({exc.strerror}){hint}"
        ) from exc
    return f"created {folder} for the SQLite database {url}{hint}"


def json_dumps(value: Any) -> str:
    """orjson, falling back to the standard library for what orjson refuses (huge integers)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)


def json_loads(text: str | bytes) -> Any:
    """orjson, falling back to the standard library for what orjson refuses (``1e400``)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _apply_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()
