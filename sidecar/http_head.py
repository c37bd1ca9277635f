"""uvicorn's httptools protocol with a bound on the request head.

uvicorn buffers a request line and headers of any size before the app sees them; one client
could make the sidecar hold megabytes per connection. Past ``MAX_HEAD_BYTES`` the connection is
answered ``431`` (in vLLM's error shape) and closed.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 256 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _head_bytes = 0
    _in_head = True  # a connection starts with a request head

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes, self._in_head = 0, True

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Count only what left a head unfinished (a body in the same chunk is not head): the
        # parser holds at most MAX_HEAD_BYTES plus one read before the refusal.
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse()

    def _refuse(self) -> None:
        message = f"request line and headers exceed {MAX_HEAD_BYTES} bytes"
        body = orjson.dumps({"error": {"message": message, "type": "BadRequestError",
                                       "param": None, "code": 431}})  # fmt: skip
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        self.transport.close()
