"""The checks a field's own constraint cannot express: values that depend on another key, and
the database URL's scheme (each error names the key and the fix).

Limits on single values are declared on the fields (:mod:`.values`); the driver each scheme
maps to is :func:`sidecar.store.engine.driver_url`'s business.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sidecar.errors import ConfigError

if TYPE_CHECKING:
    from sidecar.settings.sections import Settings

# The databases the sidecar can store into (``+driver`` suffixes are accepted and replaced).
DATABASE_SCHEMES = ("postgresql", "postgres", "sqlite")


def check_values(settings: Settings) -> None:
    if settings.spool.segment_bytes > settings.spool.max_bytes:
        raise ConfigError("spool.segment_bytes: must not exceed spool.max_bytes")
    judge = settings.judge
    if judge.enabled and not judge.base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"judge.base_url: must start with http:// or https://, got {judge.base_url!r}"
        )
    check_database_url(settings.database.url)


def check_database_url(url: str) -> None:
    """Refuse a ``database.url`` that is not a URL or names a database the sidecar cannot use."""
    scheme, sep, _rest = url.partition("://")
    if not sep:
        raise ConfigError(
            f"database.url: {url!r} is not a URL; use postgresql://user@host:5432/db "
            "or sqlite:///path/to/file.db"
        )
    if scheme.split("+", 1)[0] not in DATABASE_SCHEMES:
        raise ConfigError(
            f"database.url: unsupported scheme {scheme!r}; use postgresql://... or sqlite:///..."
        )
