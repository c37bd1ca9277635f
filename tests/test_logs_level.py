"""`sidecar serve` follows `log_level` (operators of N replicas turn INFO off to cut noise)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from sidecar.testing.servers import RunningServer
from tests.helpers import wait_for
from tests.proxy.test_upstream_faults import closed_port

pytestmark = pytest.mark.slow


def test_log_level_warning_keeps_info_lines_out_of_the_log(
    upstream: RunningServer, tmp_path: Path
) -> None:
    admin_port = closed_port()
    config = tmp_path / "sidecar.yaml"
    config.write_text(yaml.safe_dump({
        "upstream": {"url": upstream.url},
        "proxy": {"host": "127.0.0.1", "port": closed_port()},
        "admin": {"port": admin_port},
        "database": {"url": f"sqlite:///{tmp_path / 'sidecar.db'}"},
        "spool": {"dir": str(tmp_path / "spool")},
        "log_level": "warning",
    }))  # fmt: skip
    log = tmp_path / "sidecar.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "sidecar.cli", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=stderr,
            env={**os.environ, "SIDECAR_UPSTREAM_URL": "", "SIDECAR_DATABASE_URL": ""},
        )  # fmt: skip
    try:

        def serving() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{admin_port}/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(serving, timeout_s=60, what="the sidecar to serve")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    info_lines = [line for line in log.read_text().splitlines() if "INFO" in line]
    assert info_lines == []
