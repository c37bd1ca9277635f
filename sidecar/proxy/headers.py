"""Header rules for a transparent reverse proxy (pure functions over raw ASGI header pairs)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

Headers = list[tuple[bytes, bytes]]

# RFC 9110 section 7.6.1 hop-by-hop headers, plus the framing headers the proxy recomputes.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_NOT_FORWARDED_UPSTREAM = HOP_BY_HOP | {b"host", b"content-length", b"expect"}
_NOT_RELAYED_TO_CLIENT = HOP_BY_HOP | {b"x-request-id"}


def upstream_request_headers(
    client_headers: Sequence[tuple[bytes, bytes]], *, api_key: str | None
) -> dict[str, str]:
    """Headers to send upstream: the client's, minus hop-by-hop and framing ones.

    ``Authorization`` passes through unless an upstream key is configured, which
    then replaces it. Header names arrive lower-cased from the ASGI server.
    """
    forwarded: dict[str, str] = {}
    for name, value in client_headers:
        if name in _NOT_FORWARDED_UPSTREAM or (api_key and name == b"authorization"):
            continue
        key = name.decode("latin-1")
        text = _text(value)
        forwarded[key] = f"{forwarded[key]}, {text}" if key in forwarded else text
    for name in _connection_tokens(client_headers):
        forwarded.pop(name.decode("latin-1"), None)
    if api_key:
        forwarded["authorization"] = f"Bearer {api_key}"
    return forwarded


def client_response_headers(
    upstream_headers: Iterable[tuple[bytes, bytes]], *, request_id: bytes, keep_length: bool
) -> Headers:
    """Headers to relay to the client: the upstream's, minus hop-by-hop, plus our ``x-request-id``.

    ``keep_length`` is False when the proxy changes the body (it hid a usage
    chunk), so the ASGI server frames the body itself.
    """
    pairs = [(name.lower(), value) for name, value in upstream_headers]
    named = _connection_tokens(pairs)
    dropped = _NOT_RELAYED_TO_CLIENT | named if named else _NOT_RELAYED_TO_CLIENT
    relayed: Headers = [
        (name, value)
        for name, value in pairs
        if name not in dropped
        and (keep_length or name != b"content-length")
        and not _CONTROL_BYTES.search(value)  # the client's HTTP server would refuse to send it
    ]
    relayed.append((b"x-request-id", request_id))
    return relayed


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    """Header names listed in ``Connection``: hop-by-hop too (RFC 9110 7.6.1)."""
    return {
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    }


# Control bytes other than tab are not allowed in a header value (RFC 9110 5.5).
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _text(value: bytes) -> str:
    """A header value as text for the upstream client: UTF-8 when it is (aiohttp encodes it
    back as UTF-8, byte for byte), else latin-1 (every byte maps to one character)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")
