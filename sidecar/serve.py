"""Run a :class:`Sidecar` on its two ports under uvicorn (uvloop + httptools when installed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import uvicorn

from sidecar.app import Sidecar
from sidecar.asgi import bind_socket, uvicorn_config
from sidecar.proxy.app import StreamAborted
from sidecar.settings import Settings

logger = logging.getLogger("sidecar")

GRACEFUL_SHUTDOWN_S = 30.0


@dataclass(frozen=True, slots=True)
class BoundPorts:
    proxy: int
    admin: int


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`run_sidecar`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _HideStreamAborts(logging.Filter):
    """A stream the upstream broke is re-broken for the client on purpose; not an app crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, StreamAborted)


async def run_sidecar(
    settings: Settings,
    *,
    sockets: tuple[socket.socket, socket.socket] | None = None,
    on_ready: Callable[[Sidecar, BoundPorts], None] | None = None,
    stop: asyncio.Event | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set), then drain and shut down."""
    logging.getLogger("uvicorn.error").addFilter(_HideStreamAborts())
    proxy_sock, admin_sock = sockets or (
        bind_socket(settings.proxy.host, settings.proxy.port),
        bind_socket(settings.admin.host, settings.admin.port),
    )
    sidecar = Sidecar(settings)
    await sidecar.start()
    proxy_server = _Server(
        uvicorn_config(
            sidecar.proxy_app,
            lifespan="off",
            server_header=False,
            date_header=False,
            proxy_headers=False,
            timeout_keep_alive=75,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            backlog=2048,
        )
    )
    admin_server = _Server(uvicorn_config(sidecar.admin_app, lifespan="on"))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if install_signal_handlers:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, sidecar.reload_schemas)
    servers = [
        asyncio.create_task(proxy_server.serve(sockets=[proxy_sock]), name="proxy-server"),
        asyncio.create_task(admin_server.serve(sockets=[admin_sock]), name="admin-server"),
    ]
    try:
        while not (proxy_server.started and admin_server.started):
            if any(task.done() for task in servers):
                break
            await asyncio.sleep(0.01)
        ports = BoundPorts(proxy_sock.getsockname()[1], admin_sock.getsockname()[1])
        logger.info(
            "sidecar listening: proxy on :%d -> %s, admin on :%d, log to %s",
            ports.proxy, settings.upstream.url, ports.admin, _safe_url(settings.database.url),
        )  # fmt: skip
        if on_ready is not None:
            on_ready(sidecar, ports)
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, *servers], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        logger.info("shutting down: finishing in-flight requests, then writing the spool")
    finally:
        proxy_server.should_exit = True
        admin_server.should_exit = True
        await asyncio.gather(*servers, return_exceptions=True)
        await sidecar.stop()
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)


def _safe_url(url: str) -> str:
    """The database URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"
