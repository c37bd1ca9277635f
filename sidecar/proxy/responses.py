"""Responses the sidecar itself produces on the proxy port (OpenAI-shaped errors)."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from sidecar.asgi_types import ASGISend


def error_body(message: str, error_type: str, status: int, param: str | None = None) -> bytes:
    """The body vLLM (>= 0.10.1) uses for errors, so clients parse ours the same way."""
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": param, "code": status}}
    )


async def send_json(
    send: ASGISend, status: int, body: bytes, extra_headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
