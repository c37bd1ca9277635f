"""Run a :class:`Sidecar` on its two ports under uvicorn (uvloop + httptools when installed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import uvicorn

from sidecar.metrics import SidecarMetrics
from sidecar.proxy.relay import StreamAborted
from sidecar.proxy.upstream import redact_url
from sidecar.server.app import Sidecar
from sidecar.server.asgi import bind_socket, uvicorn_config
from sidecar.server.http_head import ConnectionLimits, bounded_protocol
from sidecar.settings import Settings

logger = logging.getLogger("sidecar")

GRACEFUL_SHUTDOWN_S = 30.0
ADMIN_MAX_CONNECTIONS = 64
RESERVED_DESCRIPTORS = 128  # spool, database files, logs, worker pipes, listening sockets
MAX_SOFT_DESCRIPTORS = 1 << 20  # when the hard limit is unlimited


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
    descriptors = raise_descriptor_limit()
    max_clients = client_connection_limit(settings, descriptors)
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
            http=bounded_protocol(
                ConnectionLimits(
                    settings.proxy.head_timeout_s, max_clients, _count_connections(sidecar.metrics)
                )
            ),
        )
    )
    admin_server = _Server(
        uvicorn_config(
            sidecar.admin_app,
            lifespan="on",
            http=bounded_protocol(
                ConnectionLimits(settings.proxy.head_timeout_s, ADMIN_MAX_CONNECTIONS)
            ),
        )
    )
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
            "sidecar listening: proxy on :%d -> %s, admin on :%d, log to %s; descriptors: %s, "
            "up to %d client connections",
            ports.proxy, redact_url(sidecar.upstream.base_url), ports.admin,
            _safe_url(settings.database.url), descriptors.describe(), max_clients,
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


@dataclass(frozen=True, slots=True)
class DescriptorLimit:
    before: int  # the soft limit the process started with
    soft: int  # the soft limit now
    hard: int

    def describe(self) -> str:
        if self.soft > self.before:
            return f"soft limit raised {self.before} -> {self.soft}"
        return f"limit {self.soft} (hard limit {self.hard})"


def raise_descriptor_limit() -> DescriptorLimit:
    """Raise the soft RLIMIT_NOFILE to the hard limit when the OS allows (every connection is a
    descriptor; the usual soft default of 1,024 is a few hundred clients)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = MAX_SOFT_DESCRIPTORS if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the descriptor limit from %d: %s", soft, exc)
            return DescriptorLimit(soft, soft, hard)
        return DescriptorLimit(soft, target, hard)
    return DescriptorLimit(soft, soft, hard)


def client_connection_limit(settings: Settings, descriptors: DescriptorLimit) -> int:
    """``proxy.max_client_connections``, lowered to leave descriptors for everything else (the
    upstream pool, the database, the admin port), so a flood of clients cannot starve them."""
    configured = settings.proxy.max_client_connections
    if descriptors.soft == resource.RLIM_INFINITY:
        return configured
    reserved = (
        RESERVED_DESCRIPTORS
        + ADMIN_MAX_CONNECTIONS
        + settings.upstream.max_connections
        + 2 * settings.database.pool_size
    )
    available = max(descriptors.soft - reserved, descriptors.soft // 4)
    if available >= configured:
        return configured
    logger.warning(
        "proxy.max_client_connections %d lowered to %d: the descriptor limit is %d, and %d are "
        "kept for the upstream pool (upstream.max_connections), the database and the admin port",
        configured, available, descriptors.soft, min(reserved, descriptors.soft - available),
    )  # fmt: skip
    return available


def _count_connections(metrics: SidecarMetrics) -> Callable[[str], None]:
    def on_event(event: str) -> None:
        if event == "open":
            metrics.client_connections.inc()
        elif event == "closed":
            metrics.client_connections.dec()
        else:
            metrics.client_connections_closed.labels(event).inc()

    return on_event
