"""Writing request rows: one transaction per batch, idempotent on the request id.

The writer replays its spool after a crash, so inserting the same batch twice must be harmless:
``INSERT ... ON CONFLICT (id) DO NOTHING`` keeps the first copy, and ``RETURNING id`` counts the
rows that were new. Postgres gets one statement per chunk with a column array per parameter
(``INSERT ... SELECT FROM unnest($1::text[], ...)``, about twice the speed of a multi-row
``VALUES`` list); SQLite gets SQLAlchemy's multi-row insert.

Errors go through the store's seam (:mod:`sidecar.store.errors`): a database that cannot be
reached becomes :class:`~sidecar.errors.StoreUnavailable` (retry the batch later); anything else
(a value the database refuses) propagates as it is, so the caller can fall back to row by row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import operator
import re
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sidecar.records import JsonValue, LoggedRequest
from sidecar.store.engine import json_dumps
from sidecar.store.errors import is_connectivity_error, translated_errors
from sidecar.store.tables import UtcDateTime, requests_table

NUL = "\x00"
REPLACEMENT = "\ufffd"
POSTGRES_CHUNK_ROWS = 2000

# LoggedRequest.as_row(), unrolled: this runs for every row, at thousands of rows a second.
_FIELD_NAMES = tuple(field.name for field in dataclasses.fields(LoggedRequest))
_fields_of = operator.attrgetter(*_FIELD_NAMES)
_COLUMNS = tuple(column for column in requests_table.columns if column.name in _FIELD_NAMES)
_FIELDS_WITHOUT_COLUMN = sorted(set(_FIELD_NAMES) - {column.name for column in _COLUMNS})
_JSON_FIELDS = tuple(column.name for column in _COLUMNS if isinstance(column.type, sa.JSON))
_TEXT_FIELDS = tuple(column.name for column in _COLUMNS if isinstance(column.type, sa.String))


async def insert_requests(engine: AsyncEngine, rows: Sequence[LoggedRequest]) -> int:
    """Insert ``rows`` in one transaction, skipping ids already stored; return how many were new.

    NUL characters (which Postgres cannot store in text or JSONB) become U+FFFD on both
    backends. Raises :class:`StoreUnavailable` when the database cannot be reached.
    """
    if not rows:
        return 0
    if _FIELDS_WITHOUT_COLUMN:
        raise RuntimeError(f"requests has no column for {', '.join(_FIELDS_WITHOUT_COLUMN)}")
    postgres = engine.dialect.name == "postgresql"
    # Postgres bodies are serialized once, in _column_array, and cleaned there as text.
    values = [_sanitized(row, json_fields=not postgres) for row in rows]
    insert = _insert_postgres if postgres else _insert_sqlite
    with translated_errors():
        async with engine.connect() as connection:
            try:
                async with connection.begin():
                    inserted = await insert(connection, values)
            except Exception as exc:
                if is_connectivity_error(exc) and not connection.invalidated:
                    # Do not hand a connection to a broken or read-only server back to the pool.
                    with contextlib.suppress(Exception):
                        await connection.invalidate()
                raise
    return inserted


async def _insert_postgres(connection: AsyncConnection, values: list[dict[str, Any]]) -> int:
    statement = _postgres_statement()
    dialect = connection.dialect
    inserted = 0
    for start in range(0, len(values), POSTGRES_CHUNK_ROWS):
        chunk = values[start : start + POSTGRES_CHUNK_ROWS]
        arrays = tuple(_column_array(column, chunk, dialect) for column in _COLUMNS)
        result = await connection.exec_driver_sql(statement, arrays)
        inserted += len(result.all())
    return inserted


async def _insert_sqlite(connection: AsyncConnection, values: list[dict[str, Any]]) -> int:
    statement = (
        sqlite.insert(requests_table)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(requests_table.c.id)
    )
    result = await connection.execute(statement, values)
    return len(result.all())


@functools.cache
def _postgres_statement() -> str:
    """``INSERT INTO requests (...) SELECT ... FROM unnest($1::VARCHAR(32)[], ...) ...``."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    quote = dialect.identifier_preparer.quote
    names, arrays, selected = [], [], []
    for position, column in enumerate(_COLUMNS, start=1):
        name = quote(column.name)
        names.append(name)
        if isinstance(column.type, sa.JSON):  # sent as text, parsed by the server
            arrays.append(f"${position}::text[]")
            selected.append(f"u.{name}::jsonb")
        else:
            arrays.append(f"${position}::{column.type.compile(dialect=dialect)}[]")
            selected.append(f"u.{name}")
    columns = ", ".join(names)
    return (
        f"INSERT INTO {quote(requests_table.name)} ({columns}) "
        f"SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)}) AS u({columns}) "
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )


def _column_array(
    column: sa.Column[Any], rows: list[dict[str, Any]], dialect: sa.Dialect
) -> list[Any]:
    name = column.name
    if isinstance(column.type, sa.JSON):
        return [None if row[name] is None else _json_text(row[name]) for row in rows]
    if isinstance(column.type, UtcDateTime):
        return [column.type.process_bind_param(row[name], dialect) for row in rows]
    return [row[name] for row in rows]


# A JSON escape for NUL that is not itself an escaped backslash followed by "u0000".
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _json_text(value: JsonValue) -> str:
    """Serialized JSON with every NUL (``\\u0000``) turned into U+FFFD."""
    text = json_dumps(value)
    if "\\u0000" in text:
        text = _ESCAPED_NUL.sub(r"\1\\ufffd", text)
    return text


def _sanitized(row: LoggedRequest, *, json_fields: bool = True) -> dict[str, Any]:
    values = dict(zip(_FIELD_NAMES, _fields_of(row), strict=True))
    for name in _TEXT_FIELDS:
        value = values[name]
        if value is not None and NUL in value:
            values[name] = value.replace(NUL, REPLACEMENT)
    for name in _JSON_FIELDS if json_fields else ():
        value = values[name]
        if value is not None:
            values[name] = sanitize_json(value)
    return values


def sanitize_json(value: JsonValue) -> JsonValue:
    """``value`` with NUL replaced by U+FFFD in every string and key (unchanged if it has none)."""
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT) if NUL in value else value
    if not isinstance(value, dict | list):
        return value
    try:
        # Fast path: orjson writes NUL as \u0000, so its absence proves there is nothing to do.
        if b"\\u0000" not in orjson.dumps(value):
            return value
    except TypeError:
        pass  # something orjson refuses (a huge integer): walk it
    cleaned: JsonValue = _replace_nul(value)
    return cleaned


def _replace_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT) if NUL in value else value
    if isinstance(value, dict):
        return {_replace_nul(key): _replace_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_nul(item) for item in value]
    return value
