"""Metrics: names follow the contract, labels stay bounded, and every metric is documented."""

from __future__ import annotations

import re
from pathlib import Path

from sidecar.metrics import LabelLimiter, SidecarMetrics

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
