"""uvicorn's httptools protocol with a bound on the request head.

uvicorn buffers a request line and headers of any size before the app sees them; one client
could make the sidecar hold megabytes per connection, and hold a connection forever by sending
its head a byte at a time. Past ``MAX_HEAD_BYTES`` the connection is answered ``431``, after
``HEAD_TIMEOUT_S`` without a complete head ``408`` (in vLLM's error shape), and closed.
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 256 * 1024
HEAD_TIMEOUT_S = 30.0


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _head_bytes = 0
    _in_head = True  # a connection starts with a request head
    _head_timer: asyncio.TimerHandle | None = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes, self._in_head = 0, True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Count only what left a head unfinished (a body in the same chunk is not head): the
        # parser holds at most MAX_HEAD_BYTES plus one read before the refusal.
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, "Request Header Fields Too Large",
                             f"request line and headers exceed {MAX_HEAD_BYTES} bytes")  # fmt: skip
            elif self._head_timer is None:  # a head has begun: it must end in time (slowloris)
                self._head_timer = asyncio.get_running_loop().call_later(
                    HEAD_TIMEOUT_S, self._head_too_slow
                )

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(408, "Request Timeout",
                         f"request line and headers not received within {HEAD_TIMEOUT_S:g} s")  # fmt: skip

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, reason: str, message: str) -> None:
        body = orjson.dumps({"error": {"message": message, "type": "BadRequestError",
                                       "param": None, "code": status}})  # fmt: skip
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n".encode()
            + b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
            + body
        )  # fmt: skip
        self.transport.close()
