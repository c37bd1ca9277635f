"""Small pure pieces of the capture: request ids, client identity, the sink protocol."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Protocol

from sidecar.records import Exchange


class ExchangeSink(Protocol):
    """Where the proxy hands each finished exchange (the durable log queue)."""

    def submit(self, exchange: Exchange) -> None: ...


def new_request_id(now_s: float | None = None) -> str:
    """A 32-hex id that sorts by creation time: 48 bits of Unix ms, 80 random bits."""
    millis = int((time.time() if now_s is None else now_s) * 1000)
    return f"{millis:012x}{os.urandom(10).hex()}"


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
