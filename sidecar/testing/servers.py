"""Run ASGI apps on real sockets (port 0) in a background thread, for tests and demos."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from sidecar.server.asgi import bind_socket, new_event_loop, uvicorn_config

__all__ = [
    "RunningServer",
    "bind_socket",
    "new_event_loop",
    "read_body",
    "serving",
    "start_server",
    "uvicorn_config",
]


@dataclass
class RunningServer:
    """An ASGI app served by uvicorn on its own event loop in a daemon thread."""

    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)


def start_server(app: Any, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> RunningServer:
    """Serve ``app`` on ``host:port`` in a background thread; returns once it accepts connections."""
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, **kwargs))
    loop = new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def serve() -> None:
            task = asyncio.ensure_future(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.005)
            started.set()
            await task

        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # reported to the caller of start_server
            failure.append(exc)
        finally:
            started.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            sock.close()

    thread = threading.Thread(target=run, name=f"uvicorn-{bound_port}", daemon=True)
    thread.start()
    started.wait(30)
    if failure or not server.started:
        raise RuntimeError(f"server on port {bound_port} failed to start") from (
            failure[0] if failure else None
        )
    return RunningServer(f"http://{host}:{bound_port}", bound_port, server, thread, loop)


@contextlib.contextmanager
def serving(app: Any, **kwargs: Any) -> Iterator[RunningServer]:
    """Context manager around :func:`start_server`."""
    running = start_server(app, **kwargs)
    try:
        yield running
    finally:
        running.stop()


async def read_body(receive: Any) -> bytes:
    """The whole request body of an ASGI HTTP request (test servers: small bodies)."""
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body"):
            return body
