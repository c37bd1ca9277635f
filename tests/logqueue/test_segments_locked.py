"""Two `sidecar serve` processes on one spool directory: the second stops with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.testing.servers import RunningServer
from tests.logqueue.test_writer_durability import sidecar_process, write_config

__all__ = ["sidecar_process"]  # the fixture, used below

pytestmark = pytest.mark.slow


def test_a_second_sidecar_on_a_locked_spool_says_who_holds_it_in_one_line_and_exits_1(
    upstream: RunningServer,
    tmp_path: Path,
    sidecar_process: Callable[[Path, int], subprocess.Popen[bytes]],
) -> None:
    spool = tmp_path / "spool"
    database_url = f"sqlite:///{tmp_path / 'sidecar.db'}"
    first_config, _, first_admin = write_config(
        tmp_path / "first.yaml", upstream.url, database_url, spool
    )
    first = sidecar_process(first_config, first_admin)
    second_config, _, _ = write_config(tmp_path / "second.yaml", upstream.url, database_url, spool)
    second = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "serve", "--config", str(second_config)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "SIDECAR_UPSTREAM_URL": "", "SIDECAR_DATABASE_URL": ""},
    )  # fmt: skip
    assert second.returncode == 1, second.stderr
    assert "Traceback" not in second.stderr
    [error] = [line for line in second.stderr.splitlines() if line.startswith("Error:")]
    assert str(spool) in error
    assert f"process {first.pid} (" in error  # the pid, and its command line
    assert "spool.dir" in error  # the fix
    assert first.poll() is None  # the first one is untouched
