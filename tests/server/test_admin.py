"""The admin port: reports as JSON/CSV, and the admin token."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from sidecar.testing.harness import RunningSidecar, running_sidecar
from sidecar.testing.servers import RunningServer
from sidecar.testing.tcp_relay import tcp_relay
from tests.helpers import sidecar_settings, wait_for_rows

CHAT = {"model": "legal", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


def test_reports_over_http_as_json_and_csv(sidecar: RunningSidecar, database_url: str) -> None:
    httpx.post(f"{sidecar.proxy_url}/v1/chat/completions", json=CHAT)
    wait_for_rows(database_url, 1)
    assert "latency" in httpx.get(f"{sidecar.admin_url}/reports").json()
    traffic = httpx.get(f"{sidecar.admin_url}/reports/traffic", params={"since": "1h"}).json()
    assert [(row["model"], row["requests"]) for row in traffic["rows"]] == [("legal", 1)]
    csv = httpx.get(f"{sidecar.admin_url}/reports/traffic", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[1].split(",")[1:4] == ["legal", "legal", "1"]
    assert httpx.get(f"{sidecar.admin_url}/reports/nope").status_code == 404
    bad = httpx.get(f"{sidecar.admin_url}/reports/traffic", params={"since": "last week"})
    assert bad.status_code == 400
    assert "neither a duration" in bad.text


def test_admin_token_guards_everything_but_the_probes(
    upstream: RunningServer, database_url: str, tmp_path: Path
) -> None:
    settings = sidecar_settings(
        upstream.url, database_url, tmp_path / "spool", admin={"token": "s3cret"}
    )
    with running_sidecar(settings) as sidecar:
        assert httpx.get(f"{sidecar.admin_url}/metrics").status_code == 401
        assert httpx.get(f"{sidecar.admin_url}/reports").status_code == 401
        authorised = {"authorization": "Bearer s3cret"}
        assert httpx.get(f"{sidecar.admin_url}/metrics", headers=authorised).status_code == 200
        assert httpx.get(f"{sidecar.admin_url}/healthz").status_code == 200


def test_alerts_endpoint_lists_active_alerts_and_transitions(sidecar: RunningSidecar) -> None:
    body = httpx.get(f"{sidecar.admin_url}/alerts").json()
    assert body == {"active": [], "recent": []}


def postgres_database_name(url: str) -> str:
    return sa.make_url(url).database or ""


@pytest.mark.postgres
def test_report_and_alert_routes_answer_200_or_503_while_database_backends_are_terminated(
    upstream: RunningServer,
    make_postgres_database: Callable[[], str],
    postgres_admin_url: str,
    tmp_path: Path,
) -> None:
    """Another session keeps killing the sidecar's Postgres backends (pg_terminate_backend)
    while report and alert calls run: each call is answered 200 or 503, never 500."""
    database_url = make_postgres_database()
    name = postgres_database_name(database_url)
    settings = sidecar_settings(upstream.url, database_url, tmp_path / "spool")
    statuses: Counter[int] = Counter()
    stop = threading.Event()
    kills: list[int] = []

    def terminate_backends() -> None:
        with psycopg.connect(postgres_admin_url, autocommit=True) as connection:
            while not stop.is_set():
                killed = connection.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                ).fetchone()
                kills.append(int(killed[0]) if killed else 0)
                stop.wait(0.005)  # pacing, not synchronisation: a kill every few milliseconds

    with running_sidecar(settings) as sidecar, httpx.Client(timeout=30) as client:
        client.post(f"{sidecar.proxy_url}/v1/chat/completions", json=CHAT)
        wait_for_rows(database_url, 1)
        killer = threading.Thread(target=terminate_backends, name="terminator")
        killer.start()
        try:
            for _ in range(40):
                for path in ("/reports/traffic", "/reports/latency", "/alerts"):
                    response = client.get(f"{sidecar.admin_url}{path}")
                    statuses[response.status_code] += 1
                    if response.status_code == 503:
                        assert response.json()["reason"], response.text
        finally:
            stop.set()
            killer.join(30)
    assert sum(kills) > 0  # backends really were terminated under the calls
    assert set(statuses) <= {200, 503}, statuses


@pytest.mark.postgres
def test_a_cut_database_gets_503_with_a_reason_logged_once_then_200_when_back(
    upstream: RunningServer,
    make_postgres_database: Callable[[], str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    database_url = make_postgres_database()
    parts = sa.make_url(database_url)
    with tcp_relay(parts.host or "127.0.0.1", parts.port or 5432) as relay:
        relayed = parts.set(port=relay.port).render_as_string(hide_password=False)
        settings = sidecar_settings(upstream.url, relayed, tmp_path / "spool")
        with running_sidecar(settings) as sidecar, httpx.Client(timeout=30) as client:
            paths = ("/reports/traffic", "/alerts", "/reports/errors", "/alerts")
            assert [client.get(f"{sidecar.admin_url}{p}").status_code for p in paths] == [200] * 4
            with caplog.at_level(logging.INFO, logger="sidecar.server.admin"):
                relay.cut()
                during = [client.get(f"{sidecar.admin_url}{p}") for p in paths * 3]
                relay.restore()
                after = [client.get(f"{sidecar.admin_url}{p}").status_code for p in paths]
    assert [response.status_code for response in during] == [503] * 12
    body = during[0].json()
    assert body["reason"].startswith("database unreachable")
    assert during[0].headers["retry-after"] == "5"
    assert after == [200] * 4
    logged = [r.getMessage() for r in caplog.records if r.name == "sidecar.server.admin"]
    assert len([line for line in logged if "store unavailable" in line]) == 1, logged
    assert len([line for line in logged if "answers again" in line]) == 1, logged


def test_an_unexpected_admin_error_is_logged_with_its_traceback(
    upstream: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database without the schema (auto_migrate off) is a fault, not an outage: the answer
    stays 500, and the log says why (it used to say nothing)."""
    database_url = f"sqlite:///{tmp_path / 'empty.db'}"
    settings = sidecar_settings(
        upstream.url, database_url, tmp_path / "spool", database={"auto_migrate": False}
    )
    with (
        running_sidecar(settings) as sidecar,
        caplog.at_level(logging.ERROR, "sidecar.server.admin"),
    ):
        response = httpx.get(f"{sidecar.admin_url}/reports/traffic")
    assert response.status_code == 500
    (record,) = [r for r in caplog.records if r.name == "sidecar.server.admin"]
    assert record.getMessage() == "admin API: unexpected error"
    assert record.exc_info is not None
    assert "no such table" in str(record.exc_info[1])
