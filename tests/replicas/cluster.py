"""Sidecar replicas as real processes (`sidecar serve --config ...`), on ports they pick.

Each replica binds port 0 and the test reads the ports from the start-up log line
(``sidecar listening: proxy on :P -> ..., admin on :A``), so a restarted replica never races
another process for a port picked in advance.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import wait_for

LISTENING = re.compile(r"sidecar listening: proxy on :(\d+) .*admin on :(\d+)")


@dataclass(frozen=True, slots=True)
class Incarnation:
    """One process of a replica: its pid and when it was started (``time.monotonic()``)."""

    pid: int
    started_at: float


@dataclass
class Replica:
    """One sidecar replica: a config file and a spool directory that outlive its processes."""

    name: str
    config: Path
    log_dir: Path
    proxy_url: str = ""
    admin_url: str = ""
    incarnations: list[Incarnation] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}-{len(self.incarnations) - 1}.log"

    def spawn(self) -> None:
        """Start a process (returns at once; :meth:`wait_ready` waits for it to serve)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        log = (self.log_dir / f"{self.name}-{len(self.incarnations)}.log").open("wb")
        with log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sidecar.cli", "serve", "--config", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=log,
                env={**os.environ, "SIDECAR_UPSTREAM_URL": "", "SIDECAR_DATABASE_URL": ""},
            )  # fmt: skip
        self.incarnations.append(Incarnation(self.process.pid, time.monotonic()))

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Read the ports from the start-up log line, then wait for ``/healthz``."""
        process = self.process
        assert process is not None

        def listening() -> tuple[int, int] | None:
            text = self.log_path.read_text(errors="replace")
            assert process.poll() is None, f"{self.name} exited:\n{text}"
            found = LISTENING.search(text)
            return (int(found.group(1)), int(found.group(2))) if found else None

        proxy_port, admin_port = wait_for(listening, timeout_s, f"{self.name} to listen")
        self.admin_url = f"http://127.0.0.1:{admin_port}"
        wait_for(self._healthy, timeout_s, f"{self.name} /healthz")
        self.proxy_url = f"http://127.0.0.1:{proxy_port}"  # traffic may go here from now on

    def kill(self) -> None:
        """SIGKILL: no drain, no clean shutdown (an OOM kill or a node failure)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout_s: float = 40.0) -> None:
        """SIGTERM and wait (the spool is drained); SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def metric(self, name: str) -> float:
        """The sum of a metric's samples (all labels) on the admin port's /metrics."""
        text = httpx.get(f"{self.admin_url}/metrics", timeout=5).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        )

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.admin_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False
