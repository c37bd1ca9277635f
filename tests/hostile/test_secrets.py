"""Secrets stay secret: API keys never reach the log rows, the log output, /metrics or the spool;
the admin port listens on loopback unless told otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from sidecar.fake_vllm import FakeVllm, FakeVllmConfig, create_fake_vllm
from sidecar.settings import load_settings
from sidecar.testing.harness import running_sidecar
from sidecar.testing.servers import RunningServer, start_server
from tests.helpers import sidecar_settings, sync_url, wait_for_rows

CLIENT_KEY = "sk-secret-123"
UPSTREAM_KEY = "up-secret-456"
ADMIN_TOKEN = "adm-secret-789"
SECRETS = (CLIENT_KEY, UPSTREAM_KEY, ADMIN_TOKEN)
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


@pytest.fixture
def keyed_fake() -> Iterator[tuple[FakeVllm, RunningServer]]:
    """A fake vLLM started with ``--api-key``: it answers 401 to anything but the upstream key."""
    fake = create_fake_vllm(FakeVllmConfig(api_key=UPSTREAM_KEY))
    server = start_server(fake)
    yield fake, server
    server.stop()


def everything_stored(database_url: str) -> str:
    """Every column of every row of every table, as one searchable text."""
    engine = sa.create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            tables = sa.inspect(connection).get_table_names()
            dumped = [
                repr(row)
                for name in tables
                for row in connection.execute(sa.text(f'SELECT * FROM "{name}"'))
            ]
    finally:
        engine.dispose()
    return "\n".join(dumped)


def files_under(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in directory.rglob("*") if path.is_file())


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog, kept attached: the admin app's Litestar replaces the root logger's handlers when
    it starts (see tests/replicas/test_replica_logging.py), which would detach caplog. Its
    handler also sits on the ``sidecar`` logger (startup lines) and is put back on the root
    logger, at DEBUG, by :func:`reattach` once the sidecar runs."""
    caplog.set_level(logging.DEBUG)
    sidecar_logger = logging.getLogger("sidecar")
    sidecar_logger.addHandler(caplog.handler)
    yield caplog
    sidecar_logger.removeHandler(caplog.handler)
    logging.getLogger().removeHandler(caplog.handler)


def reattach(caplog: pytest.LogCaptureFixture) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    if caplog.handler not in root.handlers:
        root.addHandler(caplog.handler)


def test_api_keys_never_appear_in_rows_logs_metrics_or_the_spool(
    keyed_fake: tuple[FakeVllm, RunningServer],
    database_url: str,
    tmp_path: Path,
    all_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    fake, server = keyed_fake
    spool = tmp_path / "spool"
    settings = sidecar_settings(
        server.url,
        database_url,
        spool,
        upstream={"api_key": UPSTREAM_KEY},
        admin={"token": ADMIN_TOKEN},
        proxy={"max_body_bytes": 4096},
    )
    client_auth = {"authorization": f"Bearer {CLIENT_KEY}"}
    with running_sidecar(settings) as sidecar, httpx.Client(headers=client_auth) as client:
        reattach(all_logs)
        proxy = sidecar.proxy_url
        assert client.post(f"{proxy}/v1/chat/completions", json=CHAT).status_code == 200
        assert fake.last_request_headers is not None
        assert fake.last_request_headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
        streamed = client.post(f"{proxy}/v1/chat/completions", json={**CHAT, "stream": True})
        assert streamed.status_code == 200
        failing = {"x-fake-status": "500"}
        assert client.post(f"{proxy}/v1/completions", headers=failing, json={}).status_code == 500
        unknown = {**CHAT, "model": "no-such-model"}
        assert client.post(f"{proxy}/v1/chat/completions", json=unknown).status_code == 404
        big = {**CHAT, "user": "u" * 5000}
        assert client.post(f"{proxy}/v1/chat/completions", json=big).status_code == 413
        assert client.get(f"{proxy}/v1/models").status_code == 200
        rows = wait_for_rows(database_url, 6)
        feedback = {"request_id": rows[0]["id"], "rating": "up", "user": "someone"}
        assert client.post(f"{proxy}/sidecar/v1/feedback", json=feedback).status_code == 201
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        metrics = httpx.get(f"{sidecar.admin_url}/metrics", headers=admin).text
        spooled = files_under(spool)
    assert all(row["client_key_hash"] for row in rows)  # the key was seen, and kept as a hash
    stored = everything_stored(database_url)
    logged = (
        all_logs.text
        + "".join(f"{record.getMessage()} {record.exc_text}" for record in all_logs.records)
        + capfd.readouterr().err  # what the sidecar's own log handler wrote
    )
    assert "/v1/chat/completions" in stored  # the search looks at real content ...
    assert "sidecar listening" in logged  # ... on both sides (a startup line ...
    assert "shutting down" in logged  # ... and one after the sidecar ran)
    for secret in SECRETS:
        assert secret not in stored, f"{secret} is in the database"
        assert secret not in logged, f"{secret} is in the log output"
        assert secret not in metrics, f"{secret} is in /metrics"
        assert secret.encode() not in spooled, f"{secret} is in the spool"


def test_the_admin_port_listens_on_loopback_by_default(
    upstream: RunningServer, database_url: str, tmp_path: Path
) -> None:
    assert load_settings(env={}).admin.host == "127.0.0.1"
    settings = sidecar_settings(upstream.url, database_url, tmp_path / "spool")
    assert settings.admin.host == "127.0.0.1"  # the test helper does not change it either
    with running_sidecar(settings) as sidecar:
        port = int(sidecar.admin_url.rsplit(":", 1)[1])
        assert listening_addresses(port) == {"127.0.0.1"}


def listening_addresses(port: int) -> set[str]:
    """The local IPv4/IPv6 addresses with a listening TCP socket on ``port`` (/proc/net/tcp*)."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                address, port_hex = local.split(":")
                if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                    found.add(_address(address, width))
    return found


def _address(hex_address: str, width: int) -> str:
    if width == 8:  # little-endian IPv4
        return ".".join(str(int(hex_address[i : i + 2], 16)) for i in (6, 4, 2, 0))
    return "ipv6:" + hex_address
