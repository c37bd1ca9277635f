"""Raw HTTP/1.1 over sockets for hostile tests: exact bytes out, parsed responses back.

``exchange`` sends bytes a well-behaved client library would refuse to send; ``read_responses``
parses what comes back (Content-Length or chunked framing); ``RawUpstream`` is an upstream that
records the exact bytes the sidecar forwards and answers with canned bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field

OK_BODY = b'{"object":"raw-upstream","ok":true}'
OK_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    + b"content-length: %d\r\n\r\n" % len(OK_BODY)
    + OK_BODY
)


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key.lower() == name), None)


@dataclass
class Received:
    """What a raw connection got back: the parsed responses, whether the server closed it."""

    responses: list[RawResponse] = field(default_factory=list)
    closed: bool = False
    leftover: bytes = b""

    @property
    def statuses(self) -> list[int]:
        return [response.status for response in self.responses]


def connect(port: int, timeout_s: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def exchange(
    port: int, data: bytes, *, responses: int = 1, timeout_s: float = 2.0, head: bool = False
) -> Received:
    """Send ``data`` on a fresh connection; read until ``responses`` arrived, close or silence.

    ``head``: the request was HEAD, so responses carry no body whatever their Content-Length.
    """
    raw = bytearray()
    closed = False
    with connect(port) as sock:
        with contextlib.suppress(OSError):  # the server may refuse the rest and close early
            sock.sendall(data)
        sock.settimeout(timeout_s)
        try:
            while chunk := sock.recv(65536):
                raw += chunk
                if len(read_responses(bytes(raw), head=head).responses) >= responses:
                    break
            else:
                closed = True
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
    received = read_responses(bytes(raw), head=head)
    received.closed = closed
    return received


def wait_closed(sock: socket.socket, timeout_s: float) -> bytes | None:
    """What the server sent before closing ``sock``; None if it was still open after the wait."""
    sock.settimeout(timeout_s)
    data = bytearray()
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return bytes(data)


def read_responses(raw: bytes, *, head: bool = False) -> Received:
    """Parse back-to-back HTTP/1.1 responses (Content-Length or chunked bodies)."""
    received = Received()
    rest = raw
    while rest.startswith(b"HTTP/1."):
        head_bytes, sep, after = rest.partition(b"\r\n\r\n")
        if not sep:
            break
        status_line, *lines = head_bytes.split(b"\r\n")
        headers = [
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(b":") for line in lines)
        ]
        response = RawResponse(int(status_line.split()[1]), headers, b"")
        length = response.header(b"content-length")
        if head or response.status in (101, 204, 304) or response.status < 200:
            pass
        elif response.header(b"transfer-encoding") == b"chunked":
            body, after = _dechunk(after)
            if body is None:
                break
            response.body = body
        elif length is not None:
            if len(after) < int(length):
                break
            response.body, after = after[: int(length)], after[int(length) :]
        received.responses.append(response)
        rest = after
    received.leftover = rest
    return received


def _dechunk(data: bytes) -> tuple[bytes | None, bytes]:
    body = bytearray()
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        if not sep:
            return None, data
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return bytes(body), data.partition(b"\r\n")[2]
        if len(data) < size + 2:
            return None, data
        body += data[:size]
        data = data[size + 2 :]


def request(
    method: str = "GET",
    target: str | bytes = "/v1/models",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    *,
    content_length: bool = True,
) -> bytes:
    """One HTTP/1.1 request as bytes, exactly as given (no validation, no normalisation)."""
    target_bytes = target if isinstance(target, bytes) else target.encode("latin-1")
    lines = [method.encode("latin-1") + b" " + target_bytes + b" HTTP/1.1", b"host: sidecar"]
    lines += [name + b": " + value for name, value in headers or []]
    if body and content_length:
        lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class RawUpstream:
    """A TCP server that records each request's raw bytes and answers ``response``."""

    def __init__(self, response: bytes = OK_RESPONSE) -> None:
        self.response = response
        self.requests: list[bytes] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RawUpstream:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def close(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def forwarded(self, marker: bytes, *, wait_s: float = 0.0) -> list[bytes]:
        """The recorded requests that contain ``marker``, waiting up to ``wait_s`` for one."""
        deadline = time.monotonic() + wait_s
        while True:
            found = [raw for raw in list(self.requests) if marker in raw]
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.01)

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, limit=64 * 1024 * 1024
        )
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _sep, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                writer.write(self.response)
                await writer.drain()
        writer.close()
