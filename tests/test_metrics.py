"""Metrics: names follow the contract, labels stay bounded, and every metric is documented."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sidecar.metrics import LabelLimiter, SidecarMetrics
from sidecar.testing.harness import RunningSidecar, start_sidecar
from sidecar.testing.servers import RunningServer
from tests.helpers import sidecar_settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
# The names DESIGN.md promises users (the foundation's share of them).
CONTRACT_METRICS = (
    "sidecar_requests_total",
    "sidecar_request_duration_seconds",
    "sidecar_time_to_first_token_seconds",
    "sidecar_upstream_errors_total",
    "sidecar_tokens_total",
    "sidecar_schema_validations_total",
    "sidecar_log_spool_bytes",
    "sidecar_log_rows_written_total",
    "sidecar_log_rows_lost_total",
)


def exported_names() -> set[str]:
    metrics = SidecarMetrics()
    names = set()
    for family in metrics.registry.collect():
        suffix = "_total" if family.type == "counter" else ""
        names.add(family.name + suffix)
    return names


def test_every_metric_is_documented_and_no_stale_entries() -> None:
    documented = set(re.findall(r"^\| `(sidecar_[a-z_]+)` \|", DOCS.read_text(), re.MULTILINE))
    assert exported_names() == documented


def test_contract_metric_names_exist() -> None:
    assert set(CONTRACT_METRICS) <= exported_names()


def test_label_limiter_collapses_values_past_the_limit_to_other() -> None:
    limit = LabelLimiter(2)
    assert [limit("a"), limit("b"), limit("c"), limit("a"), limit(None)] == [
        "a",
        "b",
        "other",
        "a",
        "none",
    ]


def test_served_names_keep_their_label_after_clients_invent_more_than_the_limit() -> None:
    limit = LabelLimiter(3)
    limit.serve(["tiny", "support"])
    invented = [limit(f"made-up-{n}") for n in range(5)]
    assert invented == ["made-up-0", "other", "other", "other", "other"]  # 3 - 2 served = 1 slot
    assert (limit("support"), limit("tiny")) == ("support", "tiny")


def test_names_served_later_get_a_label_even_when_invented_ones_took_every_slot() -> None:
    limit = LabelLimiter(2)
    assert [limit("a"), limit("b"), limit("c")] == ["a", "b", "other"]
    limit.serve(["legal"])  # an adapter loaded after clients filled the slots
    assert [limit("legal"), limit("a"), limit("d")] == ["legal", "a", "other"]


def test_served_names_past_the_limit_collapse_to_other() -> None:
    limit = LabelLimiter(2)
    limit.serve(["m1", "m2", "m3"])
    assert [limit("m1"), limit("m2"), limit("m3"), limit("x")] == ["m1", "m2", "other", "other"]


@pytest.fixture
def sqlite_sidecar(upstream: RunningServer, tmp_path: Path) -> Iterator[RunningSidecar]:
    database_url = f"sqlite:///{tmp_path / 'sidecar.db'}"
    running = start_sidecar(sidecar_settings(upstream.url, database_url, tmp_path / "spool"))
    yield running
    running.stop()


def test_a_real_adapter_keeps_its_label_after_60_invented_model_names(
    sqlite_sidecar: RunningSidecar,
) -> None:
    url = f"{sqlite_sidecar.proxy_url}/v1/chat/completions"
    messages = [{"role": "user", "content": "hi"}]
    with httpx.Client(timeout=30) as client:
        for n in range(60):  # default metrics.max_label_values is 50; the upstream answers 404
            invented = client.post(url, json={"model": f"invented-{n}", "messages": messages})
            assert invented.status_code == 404
        served = client.post(url, json={"model": "support", "messages": messages, "max_tokens": 2})
        assert served.status_code == 200
        metrics = client.get(f"{sqlite_sidecar.admin_url}/metrics").text
    assert 'sidecar_requests_total{model="support",status="200"} 1.0' in metrics
    assert 'sidecar_requests_total{model="other",status="404"}' in metrics
