"""The admin port: reports as JSON/CSV, and the admin token."""

from __future__ import annotations

from pathlib import Path

import httpx

from sidecar.testing.harness import RunningSidecar, running_sidecar
from sidecar.testing.servers import RunningServer
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
