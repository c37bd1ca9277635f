"""Run a whole sidecar (proxy + admin + writer) in a background thread, for tests and the demo."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sidecar.server.app import Sidecar
from sidecar.server.asgi import new_event_loop
from sidecar.server.serve import BoundPorts, run_sidecar
from sidecar.settings import Settings, load_settings

T = TypeVar("T")


@dataclass
class RunningSidecar:
    proxy_url: str
    admin_url: str
    sidecar: Sidecar
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    _stop: asyncio.Event

    def stop(self, timeout_s: float = 30.0) -> None:
        """Graceful stop: in-flight requests finish, the spool is written. Stopping twice is
        stopping once (a test may stop it to read what was logged; the fixture stops it again)."""
        if not self.thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout_s)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        """Run a coroutine on the sidecar's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)


def sidecar_settings(
    upstream_url: str, database_url: str, spool_dir: Path, **sections: dict[str, Any]
) -> Settings:
    """Settings for a sidecar under test: free ports, a private spool, a fast writer."""
    overrides: dict[str, dict[str, Any]] = {
        "proxy": {"host": "127.0.0.1", "port": 0},
        "admin": {"port": 0},
        "upstream": {"url": upstream_url, "models_refresh_s": 0.5},
        "database": {"url": database_url},
        "spool": {"dir": str(spool_dir)},
        # Rows built in-process: a worker process per test sidecar would cost ~1 s of CPU each.
        # The subprocess tests (durability, replicas) and test_rowworkers cover the workers.
        "writer": {"idle_poll_s": 0.05, "retry_initial_s": 0.05, "retry_max_s": 0.5, "workers": 0},
    }
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return load_settings(env={}, overrides=overrides)


def start_sidecar(settings: Settings, *, timeout_s: float = 30.0) -> RunningSidecar:
    """Start a sidecar on the ports in ``settings`` (use 0 for free ones); returns when serving."""
    loop = new_event_loop()
    ready = threading.Event()
    found: list[tuple[Sidecar, BoundPorts]] = []
    failure: list[BaseException] = []
    stop_holder: list[asyncio.Event] = []

    def on_ready(sidecar: Sidecar, ports: BoundPorts) -> None:
        found.append((sidecar, ports))
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            stop = asyncio.Event()
            stop_holder.append(stop)
            await run_sidecar(settings, on_ready=on_ready, stop=stop, install_signal_handlers=False)

        try:
            loop.run_until_complete(main())
        except BaseException as exc:
            failure.append(exc)
        finally:
            ready.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name="sidecar", daemon=True)
    thread.start()
    ready.wait(timeout_s)
    if not found:
        raise RuntimeError("the sidecar did not start") from (failure[0] if failure else None)
    sidecar, ports = found[0]
    host = "127.0.0.1"
    return RunningSidecar(
        f"http://{host}:{ports.proxy}",
        f"http://{host}:{ports.admin}",
        sidecar,
        loop,
        thread,
        stop_holder[0],
    )


@contextlib.contextmanager
def running_sidecar(settings: Settings) -> Iterator[RunningSidecar]:
    running = start_sidecar(settings)
    try:
        yield running
    finally:
        running.stop()
