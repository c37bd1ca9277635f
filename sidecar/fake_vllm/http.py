"""Bare ASGI plumbing for the fake: body reading, replies, disconnect watching, TCP resets."""

from __future__ import annotations

import contextlib
import socket
import struct

from sidecar.asgi_types import ASGIReceive, ASGIScope, ASGISend

Header = tuple[bytes, bytes]

VARY: Header = (b"vary", b"Origin")
JSON: Header = (b"content-type", b"application/json")
EVENT_STREAM: Header = (b"content-type", b"text/event-stream; charset=utf-8")
RST_ON_CLOSE = struct.pack("ii", 1, 0)


async def read_body(receive: ASGIReceive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


def header_dict(scope: ASGIScope) -> dict[str, str]:
    """Request headers by lower-case name (the last one wins), latin-1 decoded like Starlette."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


def find_header(scope: ASGIScope, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return bytes(value)
    return None


async def reply(
    send: ASGISend,
    status: int,
    body: bytes,
    content_type: Header | None = JSON,
    extra: tuple[Header, ...] = (),
) -> None:
    """A complete response with ``content-length``, ``content-type`` (when given) and ``vary``."""
    headers = [(b"content-length", b"%d" % len(body))]
    if content_type is not None:
        headers.append(content_type)
    headers.append(VARY)
    headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def wait_for_disconnect(receive: ASGIReceive) -> None:
    """Return once the client has gone (call only after the request body was read).

    Under uvicorn this also returns once the response is complete, so callers cancel it first.
    """
    while (await receive())["type"] != "http.disconnect":
        pass


def abort_connection(send: ASGISend) -> bool:
    """Reset the TCP connection under ``send`` (RST, not FIN). False if the server hides it.

    uvicorn's ``send`` is a bound method of its request cycle, which holds the transport.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not callable(getattr(transport, "abort", None)):
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_ON_CLOSE)
    transport.abort()
    return True


class Reply:
    """A whole non-streaming response, built by a pure handler and sent by the app."""

    __slots__ = ("body", "content_type", "status")

    def __init__(self, status: int, body: bytes, content_type: Header | None = JSON) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
