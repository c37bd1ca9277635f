"""No acknowledged request is lost: Postgres outages, SIGKILL and SIGTERM of a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from sidecar.testing.harness import running_sidecar
from sidecar.testing.servers import RunningServer
from sidecar.testing.tcp_relay import tcp_relay
from tests.helpers import fetch_rows, sidecar_settings, wait_for, wait_for_rows
from tests.proxy.test_upstream_faults import closed_port

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}

pytestmark = pytest.mark.slow


def send_many(url: str, count: int) -> list[str]:
    """Send ``count`` chats; every one must succeed. Returns the sidecar's request ids."""
    with httpx.Client(base_url=url, timeout=30) as http:
        responses = [http.post("/v1/chat/completions", json=CHAT) for _ in range(count)]
    assert [r.status_code for r in responses] == [200] * count
    return [r.headers["x-request-id"] for r in responses]


@pytest.mark.postgres
def test_postgres_outage_loses_nothing_and_duplicates_nothing(
    upstream: RunningServer, make_postgres_database: Callable[[], str], tmp_path: Path
) -> None:
    direct_url = make_postgres_database()
    parts = urlsplit(direct_url)
    with tcp_relay(parts.hostname or "127.0.0.1", parts.port or 5432) as relay:
        relayed_url = direct_url.replace(f":{parts.port}/", f":{relay.port}/")
        settings = sidecar_settings(upstream.url, relayed_url, tmp_path / "spool")
        with running_sidecar(settings) as sidecar:
            ids = send_many(sidecar.proxy_url, 40)
            wait_for_rows(direct_url, 40)
            relay.cut()
            ids += send_many(sidecar.proxy_url, 120)  # served while the database is away
            writer = sidecar.sidecar.writer
            assert writer is not None
            wait_for(lambda: not writer.healthy, what="the writer to notice the outage")
            assert httpx.get(f"{sidecar.admin_url}/readyz").status_code == 503
            assert sidecar.sidecar.spool.pending_bytes > 0
            relay.restore()
            rows = wait_for_rows(direct_url, 160)
    assert sorted(row["id"] for row in rows) == sorted(ids)


@pytest.mark.postgres
def test_slow_postgres_slows_nothing_a_client_sees(
    upstream: RunningServer, make_postgres_database: Callable[[], str], tmp_path: Path
) -> None:
    """Every answer from Postgres held back 0.5 s (a commit takes seconds): requests are served
    from the spool as usual, the writer falls behind, then catches up; nothing lost or doubled."""
    direct_url = make_postgres_database()
    parts = urlsplit(direct_url)
    with tcp_relay(parts.hostname or "127.0.0.1", parts.port or 5432) as relay:
        relayed_url = direct_url.replace(f":{parts.port}/", f":{relay.port}/")
        settings = sidecar_settings(upstream.url, relayed_url, tmp_path / "spool")
        with running_sidecar(settings) as sidecar:
            ids = send_many(sidecar.proxy_url, 10)
            wait_for_rows(direct_url, 10)
            relay.delay_s = 0.5
            with ThreadPoolExecutor(8) as pool:
                batches = list(pool.map(lambda _: send_many(sidecar.proxy_url, 25), range(8)))
            ids += [request_id for batch in batches for request_id in batch]
            assert sidecar.sidecar.spool.pending_bytes > 0  # the writer is behind, not the proxy
            relay.delay_s = 0.0
            rows = wait_for_rows(direct_url, 210)
    assert sorted(row["id"] for row in rows) == sorted(ids)


def write_config(
    path: Path, upstream_url: str, database_url: str, spool: Path
) -> tuple[Path, int, int]:
    proxy_port, admin_port = closed_port(), closed_port()
    config = {
        "upstream": {"url": upstream_url},
        "proxy": {"host": "127.0.0.1", "port": proxy_port},
        "admin": {"port": admin_port},
        "database": {"url": database_url},
        "spool": {"dir": str(spool)},
        "writer": {"idle_poll_s": 0.05},
    }
    path.write_text(yaml.safe_dump(config))
    return path, proxy_port, admin_port


@pytest.fixture
def sidecar_process(tmp_path: Path) -> Iterator[Callable[[Path, int], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(config: Path, admin_port: int) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "sidecar.cli", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"sidecar-{len(started)}.log", "wb"),  # noqa: SIM115
            env={**os.environ, "SIDECAR_UPSTREAM_URL": "", "SIDECAR_DATABASE_URL": ""},
        )  # fmt: skip
        started.append(process)

        def healthy() -> bool:
            assert process.poll() is None, (
                tmp_path / f"sidecar-{len(started) - 1}.log"
            ).read_text()
            try:
                return (
                    httpx.get(f"http://127.0.0.1:{admin_port}/healthz", timeout=1).status_code
                    == 200
                )
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout_s=60, what="the sidecar process to serve")
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def traffic_until_stopped(proxy_url: str, stop: threading.Event, acknowledged: list[str]) -> None:
    with httpx.Client(base_url=proxy_url, timeout=10) as http:
        while not stop.is_set():
            try:
                response = http.post("/v1/chat/completions", json=CHAT)
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                acknowledged.append(response.headers["x-request-id"])


def test_sigkill_mid_traffic_then_restart_logs_every_acknowledged_request_once(
    upstream: RunningServer, database_url: str, tmp_path: Path,
    sidecar_process: Callable[[Path, int], subprocess.Popen[bytes]],
) -> None:  # fmt: skip
    config, proxy_port, admin_port = write_config(
        tmp_path / "sidecar.yaml", upstream.url, database_url, tmp_path / "spool"
    )
    process = sidecar_process(config, admin_port)
    acknowledged: list[str] = []
    stop = threading.Event()
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(traffic_until_stopped, proxy_url, stop, acknowledged)
        wait_for(lambda: len(acknowledged) >= 300, what="traffic")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        stop.set()
    sidecar_process(config, admin_port)  # the restart replays the spool
    rows = wait_for_rows(database_url, len(acknowledged))
    logged = [row["id"] for row in rows]
    assert len(logged) == len(set(logged)), "a replayed record was inserted twice"
    assert set(acknowledged) <= set(logged)


def test_sigterm_drains_in_flight_requests_and_the_spool(
    upstream: RunningServer, database_url: str, tmp_path: Path,
    sidecar_process: Callable[[Path, int], subprocess.Popen[bytes]],
) -> None:  # fmt: skip
    config, proxy_port, admin_port = write_config(
        tmp_path / "sidecar.yaml", upstream.url, database_url, tmp_path / "spool"
    )
    process = sidecar_process(config, admin_port)
    ids = send_many(f"http://127.0.0.1:{proxy_port}", 50)
    slow = threading.Thread(
        target=lambda: ids.append(
            httpx.post(f"http://127.0.0.1:{proxy_port}/v1/chat/completions", json=CHAT,
                       headers={"x-fake-latency-ms": "500"}, timeout=10).headers["x-request-id"]
        )
    )  # fmt: skip
    slow.start()
    wait_for(lambda: upstream_busy(upstream), what="the slow request to reach the upstream")
    process.send_signal(signal.SIGTERM)
    slow.join(10)
    assert process.wait(30) == 0
    assert len(ids) == 51  # the in-flight request was answered
    assert sorted(row["id"] for row in fetch_rows(database_url)) == sorted(ids)


def upstream_busy(upstream: RunningServer) -> bool:
    metrics = httpx.get(f"{upstream.url}/metrics").text
    return any(
        line.startswith("vllm:num_requests_running") and not line.rstrip().endswith(" 0.0")
        for line in metrics.splitlines()
    )


@pytest.mark.postgres
def test_sidecar_starts_and_serves_while_postgres_is_down_then_catches_up(
    upstream: RunningServer, make_postgres_database: Callable[[], str], tmp_path: Path
) -> None:
    direct_url = make_postgres_database()  # empty: not even migrated yet
    parts = urlsplit(direct_url)
    with tcp_relay(parts.hostname or "127.0.0.1", parts.port or 5432) as relay:
        relay.cut()
        relayed_url = direct_url.replace(f":{parts.port}/", f":{relay.port}/")
        settings = sidecar_settings(upstream.url, relayed_url, tmp_path / "spool")
        with running_sidecar(settings) as sidecar:
            ids = send_many(sidecar.proxy_url, 30)
            assert httpx.get(f"{sidecar.admin_url}/readyz").status_code == 503
            relay.restore()
            rows = wait_for_rows(direct_url, 30)
    assert sorted(row["id"] for row in rows) == sorted(ids)
