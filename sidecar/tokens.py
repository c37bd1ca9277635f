"""Bearer tokens: does a client's ``Authorization`` header carry the configured secret, and which
client key (hashed) is it?

Header values arrive as whatever bytes the client sent (litestar decodes them as Latin-1), so
the comparison is on bytes: ``secrets.compare_digest`` refuses a ``str`` with non-ASCII
characters (``TypeError``), which answered 500 to ``Authorization: Bearer caf\\xe9``.
"""

from __future__ import annotations

import hashlib
import secrets


def _header_bytes(value: str | bytes) -> bytes:
    """The bytes the client sent (a header ``str`` is their Latin-1 decoding)."""
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


def bearer_matches(authorization: str | bytes | None, token: str) -> bool:
    """True when ``authorization`` is ``Bearer <token>`` (scheme in any case), in constant time."""
    if not authorization:
        return False
    scheme, _sep, value = _header_bytes(authorization).partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return secrets.compare_digest(value.strip(), token.encode())


class ClientKeyHasher:
    """Hash API keys to a short stable identity; the key itself is never stored."""

    __slots__ = ("_cache",)
    _MAX_CACHED = 4096

    def __init__(self) -> None:
        self._cache: dict[bytes, str] = {}

    def __call__(self, authorization: bytes | None) -> str | None:
        if not authorization:
            return None
        cached = self._cache.get(authorization)
        if cached is not None:
            return cached
        _, _, token = authorization.partition(b" ")
        digest = hashlib.sha256(token.strip() or authorization).hexdigest()[:16]
        if len(self._cache) >= self._MAX_CACHED:
            self._cache.clear()
        self._cache[authorization] = digest
        return digest
