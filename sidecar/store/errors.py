"""The store's error seam: driver exceptions become :class:`~sidecar.errors.StoreUnavailable`.

asyncpg, aiosqlite, psycopg and SQLAlchemy each report a database that cannot be reached in
their own way (socket errors, pool timeouts, SQLSTATEs, bare messages). They are told apart from
bad data here, once, the way httpx's ``map_httpcore_exceptions`` maps transport errors: wrap
database work in :func:`translated_errors` (or a function in :func:`translating`) and an outage
leaves it as ``StoreUnavailable("database unreachable: <driver error>")``, raised ``from`` the
original. Anything else (a value the database refuses) propagates as it is, so a caller can
fall back to row by row instead of retrying a bad batch forever.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from typing import ParamSpec, TypeVar

import sqlalchemy as sa

from sidecar.errors import StoreUnavailable

P = ParamSpec("P")
T = TypeVar("T")

# SQLSTATE prefixes meaning "this database cannot take writes right now", not "bad data":
# connection exceptions, insufficient resources (too many connections, disk full), operator
# intervention (shutting down, starting up, terminated, statement cancelled), system errors,
# failed authorization, missing database, read-only transaction (a demoted primary).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57", "58", "28", "3D", "25006")

# Lower-cased fragments of driver messages that carry no SQLSTATE.
_UNAVAILABLE_MESSAGES = (
    "connection refused",
    "connection reset",
    "connection was closed",
    "connection is closed",
    "connection has been closed",
    "connection timed out",
    "server closed the connection",
    "the database system is shutting down",
    "the database system is starting up",
    "terminating connection",
    "unexpected connection_lost",
    "unable to open database file",  # SQLite: the file or its folder is gone or unreadable
    "database is locked",  # SQLite: another writer held the lock past busy_timeout
    "disk i/o error",
    "database or disk is full",
)

_DRIVER_MODULES = ("asyncpg", "sqlalchemy.dialects", "aiosqlite", "psycopg")


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Raise :class:`StoreUnavailable` (from the original) when the block finds the database
    unreachable; let every other error through unchanged. Works around ``await`` too."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as exc:
        if is_connectivity_error(exc):
            raise StoreUnavailable(f"database unreachable: {describe(exc)}") from exc
        raise


def translating(function: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """``function`` (a coroutine function) with its outages raised as StoreUnavailable."""

    @functools.wraps(function)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with translated_errors():
            return await function(*args, **kwargs)

    return wrapper


def is_connectivity_error(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot be reached or cannot take writes right now.

    Looks through SQLAlchemy's wrapper (``.orig``) and explicit causes: OS-level socket errors
    and timeouts, pool timeouts, connections SQLAlchemy found dead, SQLSTATEs of the
    connection/resource/operator classes, and the usual driver messages for a lost server.
    A value or type error anywhere in the chain (a value the driver cannot encode) is bad
    data, never an outage: retrying it would block the batch forever.
    """
    chain = list(_chain(exc))
    if any(isinstance(error, ValueError | TypeError) for error in chain):
        return False
    for error in chain:
        if isinstance(error, StoreUnavailable):
            return True
        if isinstance(error, OSError | sa.exc.TimeoutError | sa.exc.DisconnectionError):
            return True
        if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
            return True
        sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(sqlstate, str):
            if sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
                return True
        elif _message_describes_connection(error):
            message = str(error).lower()
            if any(fragment in message for fragment in _UNAVAILABLE_MESSAGES):
                return True
    return False


def describe(exc: BaseException) -> str:
    """The innermost driver error's class and first line (SQLAlchemy's text holds the SQL and
    its parameters, i.e. logged bodies: never shown)."""
    root = exc
    for error in _chain(exc):
        root = error
        if not isinstance(error, sa.exc.StatementError):
            break
    lines = str(root).strip().splitlines()
    return f"{type(root).__name__}: {lines[0] if lines else 'no detail'}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, the DBAPI error SQLAlchemy wrapped, and their explicit causes (no cycles).

    ``__context__`` is not followed: an unrelated error handled earlier must not make a data
    error look like an outage (the writer would then retry a bad batch forever).
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        error = pending.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        for linked in (getattr(error, "orig", None), error.__cause__):
            if isinstance(linked, BaseException):
                pending.append(linked)


def _message_describes_connection(error: BaseException) -> bool:
    """Whether ``error``'s message can be searched for signs of a lost connection.

    Only a driver's own errors qualify, never SQLAlchemy's statement wrapper: its text holds
    the parameters, i.e. logged bodies, which may well say "connection refused".
    """
    if isinstance(error, sa.exc.StatementError):
        return False
    if isinstance(error, sqlite3.Error):
        return True
    return type(error).__module__.startswith(_DRIVER_MODULES)
