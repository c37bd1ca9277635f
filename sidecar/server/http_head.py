"""uvicorn's httptools protocol with bounds on each client connection.

uvicorn buffers a request line and headers of any size before the app sees them, waits forever
for the first byte of a new connection (its keep-alive timer starts only after a response) and
accepts connections until the process runs out of descriptors. One client could hold megabytes
per connection, or hold descriptors forever with connections that send nothing, until every
request and the admin port fail. So:

- past ``MAX_HEAD_BYTES`` the connection is answered ``431`` and closed;
- a connection must deliver a complete request head within the head timeout of opening (or of
  the first byte of a later request): a partial head is answered ``408``, a connection that
  sent nothing is closed without an answer;
- past ``max_connections`` open connections a new one is answered ``503`` once its head
  arrives (or closed after ``REFUSAL_WAIT_S`` if it sends nothing) and closed, never served;
  past ``MAX_WAITING_REFUSALS`` of those waiting at once, further ones are closed at once, so
  refusals cannot exhaust the descriptors either.

Answers are in vLLM's error shape. :func:`bounded_protocol` makes the class for one server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 256 * 1024
HEAD_TIMEOUT_S = 30.0
REFUSAL_WAIT_S = 1.0  # how long a refused connection may take to send the head we answer
MAX_WAITING_REFUSALS = 32


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    head_timeout_s: float = HEAD_TIMEOUT_S
    max_connections: int | None = None  # open connections served at once; None: no limit
    # Told "open" / "closed" as connections come and go, and why one was cut short
    # ("head_timeout", "over_limit", "head_too_large").
    on_event: Callable[[str], None] | None = None


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    limits = ConnectionLimits()
    waiting_refusals = 0  # per server class (see bounded_protocol)
    _head_bytes = 0
    _in_head = True  # a connection starts with a request head
    _head_timer: asyncio.TimerHandle | None = None
    _refusing = False
    _refusal_head = b""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._tell("open")
        limit = self.limits.max_connections
        if limit is not None and len(self.connections) > limit:
            self._refusing = True
            if type(self).waiting_refusals >= MAX_WAITING_REFUSALS:
                self._close_refused()
                return
            type(self).waiting_refusals += 1
            self._head_timer = self.loop.call_later(REFUSAL_WAIT_S, self._close_refused)
            return
        self._head_timer = self.loop.call_later(self.limits.head_timeout_s, self._head_too_slow)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes, self._in_head = 0, True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refusing and self._head_timer is not None:
            type(self).waiting_refusals -= 1
        self._stop_head_timer()
        self._tell("closed")
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusing:
            self._refusal_head = (self._refusal_head + data)[-4:]
            if b"\r\n\r\n" in self._refusal_head or b"\n\n" in self._refusal_head:
                self._close_refused()
            return
        super().data_received(data)
        # Count only what left a head unfinished (a body in the same chunk is not head): the
        # parser holds at most MAX_HEAD_BYTES plus one read before the refusal.
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._tell("head_too_large")
                self._refuse(431, "Request Header Fields Too Large",
                             f"request line and headers exceed {MAX_HEAD_BYTES} bytes")  # fmt: skip
            elif self._head_timer is None:  # a later request's head has begun: it must end in time
                self._head_timer = self.loop.call_later(
                    self.limits.head_timeout_s, self._head_too_slow
                )

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        self._tell("head_timeout")
        if self._head_bytes == 0 and self.cycle is None:
            self.transport.close()  # a connection that never sent a byte: nothing to answer
            return
        self._refuse(408, "Request Timeout",
                     f"request line and headers not received within "
                     f"{self.limits.head_timeout_s:g} s")  # fmt: skip

    def _close_refused(self) -> None:
        if self._head_timer is not None:
            self._stop_head_timer()
            type(self).waiting_refusals -= 1
        if self.transport.is_closing():
            return
        self._tell("over_limit")
        if not self._refusal_head:
            self.transport.close()
            return
        self._refuse(503, "Service Unavailable",
                     f"the sidecar is serving its limit of {self.limits.max_connections} client "
                     "connections (proxy.max_client_connections): retry later")  # fmt: skip

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _tell(self, event: str) -> None:
        if self.limits.on_event is not None:
            self.limits.on_event(event)

    def _refuse(self, status: int, reason: str, message: str) -> None:
        error_type = "ServiceUnavailableError" if status == 503 else "BadRequestError"
        body = orjson.dumps({"error": {"message": message, "type": error_type,
                                       "param": None, "code": status}})  # fmt: skip
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n".encode()
            + b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
            + body
        )  # fmt: skip
        self.transport.close()


def bounded_protocol(limits: ConnectionLimits) -> Any:
    """The protocol class for one server (uvicorn's ``http`` setting), with ``limits``."""
    namespace = {"limits": limits, "waiting_refusals": 0}
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), namespace)
