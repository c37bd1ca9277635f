"""Connections that hold descriptors: silent clients, floods past the limits, a low RLIMIT_NOFILE.

A connection must bring a complete request head within ``proxy.head_timeout_s`` of opening, or
it is closed (uvicorn alone waits forever for the first byte); past
``proxy.max_client_connections`` new connections are refused with an OpenAI-shaped 503; the
sidecar raises its descriptor soft limit at start and keeps descriptors for everything else.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest
import yaml

from sidecar.testing.harness import RunningSidecar, running_sidecar
from sidecar.testing.servers import RunningServer
from tests.helpers import sidecar_settings, wait_for
from tests.hostile.conftest import port_of
from tests.hostile.wire import connect, exchange, request, wait_closed

HEAD_TIMEOUT_S = 1.0
SILENT_CONNECTIONS = 400  # more than the sidecar's whole descriptor limit below
NOFILE = 256


def metric(admin_url: str, line_start: str) -> float:
    text = httpx.get(f"{admin_url}/metrics", timeout=5).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(line_start)]  # fmt: skip
    return sum(values)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def short_head_sidecar(upstream: RunningServer, tmp_path: Path) -> Iterator[RunningSidecar]:
    settings = sidecar_settings(
        upstream.url, f"sqlite:///{tmp_path / 'sidecar.db'}", tmp_path / "spool",
        proxy={"head_timeout_s": HEAD_TIMEOUT_S},
    )  # fmt: skip
    with running_sidecar(settings) as sidecar:
        yield sidecar


def test_a_connection_that_never_sends_a_byte_is_closed_after_the_head_timeout(
    short_head_sidecar: RunningSidecar,
) -> None:
    sock = connect(port_of(short_head_sidecar.proxy_url))
    try:
        answer = wait_closed(sock, 10 * HEAD_TIMEOUT_S)
    finally:
        sock.close()
    assert answer == b""  # closed, and nothing to answer: no request was begun
    reason = 'sidecar_client_connections_closed_total{reason="head_timeout"}'
    assert metric(short_head_sidecar.admin_url, reason) == 1


def test_a_head_sent_a_byte_at_a_time_gets_408_after_the_head_timeout(
    short_head_sidecar: RunningSidecar,
) -> None:
    sock = connect(port_of(short_head_sidecar.proxy_url))
    try:
        for byte in b"GET /v1/models HTTP/1.1\r\nhost: x\r\nx-slow: ":
            sock.sendall(bytes([byte]))
        answer = wait_closed(sock, 10 * HEAD_TIMEOUT_S)
    finally:
        sock.close()
    assert answer is not None
    assert answer.startswith(b"HTTP/1.1 408 ")
    ok = exchange(
        port_of(short_head_sidecar.proxy_url), request(headers=[(b"connection", b"close")])
    )
    assert ok.statuses == [200]


def test_connections_past_the_limit_get_503_in_openai_shape_and_service_resumes(
    upstream: RunningServer, tmp_path: Path
) -> None:
    settings = sidecar_settings(
        upstream.url, f"sqlite:///{tmp_path / 'sidecar.db'}", tmp_path / "spool",
        proxy={"max_client_connections": 5},
    )  # fmt: skip
    with running_sidecar(settings) as sidecar:
        port = port_of(sidecar.proxy_url)
        held = [connect(port) for _ in range(5)]
        try:
            wait_for(lambda: metric(sidecar.admin_url, "sidecar_client_connections ") == 5,
                     what="five open connections")  # fmt: skip
            refused = exchange(port, request(headers=[(b"connection", b"close")]))
            assert refused.statuses == [503]
            error = orjson.loads(refused.responses[0].body)["error"]
            assert (error["type"], error["code"]) == ("ServiceUnavailableError", 503)
            assert "proxy.max_client_connections" in error["message"]
        finally:
            for sock in held:
                sock.close()
        wait_for(lambda: metric(sidecar.admin_url, "sidecar_client_connections ") == 0,
                 what="the held connections to close")  # fmt: skip
        sdk = openai.OpenAI(base_url=f"{sidecar.proxy_url}/v1", api_key="k", max_retries=0)
        assert sdk.models.list().data
        over = 'sidecar_client_connections_closed_total{reason="over_limit"}'
        assert metric(sidecar.admin_url, over) == 1


def start_process(
    tmp_path: Path, upstream_url: str, nofile: tuple[int, int]
) -> tuple[subprocess.Popen[bytes], int, int, Path]:
    proxy_port, admin_port = closed_port(), closed_port()
    config = tmp_path / "sidecar.yaml"
    config.write_text(yaml.safe_dump({
        "upstream": {"url": upstream_url, "max_connections": 8},
        "proxy": {"host": "127.0.0.1", "port": proxy_port, "head_timeout_s": HEAD_TIMEOUT_S},
        "admin": {"port": admin_port},
        "database": {"url": f"sqlite:///{tmp_path / 'sidecar.db'}"},
        "spool": {"dir": str(tmp_path / "spool")},
        "writer": {"workers": 0, "idle_poll_s": 0.05},
    }))  # fmt: skip
    log = tmp_path / "sidecar.log"

    def limit_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    process = subprocess.Popen(
        [sys.executable, "-m", "sidecar.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"), preexec_fn=limit_descriptors,  # noqa: PLW1509
        env={**os.environ, "SIDECAR_UPSTREAM_URL": "", "SIDECAR_DATABASE_URL": ""},
    )  # fmt: skip

    def healthy() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{admin_port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, timeout_s=60, what="the sidecar process to serve")
    return process, proxy_port, admin_port, log


@contextlib.contextmanager
def stopped_at_exit(process: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_more_silent_connections_than_descriptors_leave_requests_and_the_admin_port_working(
    upstream: RunningServer, tmp_path: Path
) -> None:
    process, proxy_port, admin_port, log = start_process(tmp_path, upstream.url, (NOFILE, NOFILE))
    with stopped_at_exit(process):
        assert "descriptors: limit 256" in log.read_text()
        silent = [connect(proxy_port) for _ in range(SILENT_CONNECTIONS)]
        try:
            # while they are all open, the admin port answers
            health = httpx.get(f"http://127.0.0.1:{admin_port}/healthz", timeout=10)
            assert health.status_code == 200
            # every one of them is closed by the sidecar (served ones after the head timeout,
            # the ones past the connection limit at once)
            for sock in silent:
                assert wait_closed(sock, 30 * HEAD_TIMEOUT_S) is not None
        finally:
            for sock in silent:
                sock.close()
        sdk = openai.OpenAI(base_url=f"http://127.0.0.1:{proxy_port}/v1", api_key="k",
                            max_retries=0)  # fmt: skip
        for _ in range(20):
            completion = sdk.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2
            )
            assert completion.choices
        metrics = httpx.get(f"http://127.0.0.1:{admin_port}/metrics", timeout=10).text
    head_timeouts = re.search(
        r'sidecar_client_connections_closed_total\{reason="head_timeout"\} (\S+)', metrics
    )
    assert head_timeouts is not None
    assert float(head_timeouts.group(1)) > 0


def test_the_descriptor_soft_limit_is_raised_to_the_hard_limit_at_start(
    upstream: RunningServer, tmp_path: Path
) -> None:
    process, _proxy, _admin, log = start_process(tmp_path, upstream.url, (NOFILE, 4 * NOFILE))
    with stopped_at_exit(process):
        assert f"descriptors: soft limit raised {NOFILE} -> {4 * NOFILE}" in log.read_text()
