"""The command group: ``python -m sidecar`` and ``python -m sidecar.cli`` run every command."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["sidecar", "sidecar.cli"])
def test_python_dash_m_runs_the_whole_command_line(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "alerts", "--help"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "silence" in result.stdout
