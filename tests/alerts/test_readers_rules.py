"""Alert rules from configuration, and the alert loop end to end through a real sidecar."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sidecar.alerts.readers import rule_definitions
from sidecar.errors import ConfigError
from sidecar.settings import AlertRuleSettings
from sidecar.testing.harness import running_sidecar
from sidecar.testing.servers import RunningServer, start_server
from sidecar.testing.webhook_sink import WebhookSink
from tests.helpers import sidecar_settings, wait_for


def test_built_ins_can_be_overridden_disabled_and_extended() -> None:
    rules = {d.spec.name: d for d in rule_definitions([
        AlertRuleSettings(name="latency_p95", threshold=800.0, group_by=["adapter"]),
        AlertRuleSettings(name="satisfaction", enabled=False),
        AlertRuleSettings(name="ttft_p99", kind="latency", threshold=2000.0, comparison="above",
                          quantile=0.99, metric="ttft"),
    ])}  # fmt: skip
    assert rules["latency_p95"].spec.threshold == 800.0
    assert rules["latency_p95"].group_by == ("adapter",)
    assert rules["latency_p95"].spec.min_samples == 50  # untouched fields keep the default
    assert "satisfaction" not in rules
    assert rules["ttft_p99"].options == {"quantile": 0.99, "metric": "ttft"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            AlertRuleSettings(name="x", kind="latency"),
            "alerts.rules[x]: a new rule needs threshold, comparison",
        ),
        (
            AlertRuleSettings(name="latency_p95", kind="nope"),
            "alerts.rules[latency_p95].kind: unknown reader 'nope'",
        ),
        (
            AlertRuleSettings(name="error_rate", group_by=["region"]),
            "alerts.rules[error_rate].group_by: 'region'",
        ),
        (AlertRuleSettings(name="latency_p95", quantile=1.5), "alerts.rules[latency_p95].quantile"),
        (AlertRuleSettings(name="latency_p95", window_s=0), "alerts.rules[latency_p95].window_s"),
        (
            AlertRuleSettings(name="drift", features=["prompt_embeding"]),
            "alerts.rules[drift].features: 'prompt_embeding' is not a drift feature",
        ),
        (
            AlertRuleSettings(name="error_rate", group_by=["model", "model"]),
            "alerts.rules[error_rate].group_by: each label at most once",
        ),
        (
            AlertRuleSettings(name="error_rate", keep_firing_for_s=-1),
            "alerts.rules[error_rate].keep_firing_for_s: must be 0 or more seconds",
        ),
    ],
)
def test_bad_rules_name_the_rule_and_the_field(entry: AlertRuleSettings, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rule_definitions([entry])


def test_slow_upstream_fires_one_slack_message_then_resolves(
    upstream: RunningServer, database_url: str, tmp_path: Path
) -> None:
    sink = WebhookSink()
    slack = start_server(sink)
    rule = {
        "name": "latency_p95",
        "threshold": 300.0,
        "window_s": 1.5,
        "for_s": 0,
        "min_samples": 3,
    }
    settings = sidecar_settings(
        upstream.url, database_url, tmp_path / "spool",
        alerts={"interval_s": 0.2, "slack_webhook_url": f"{slack.url}/slack", "rules": [rule]},
    )  # fmt: skip
    try:
        with (
            running_sidecar(settings) as sidecar,
            httpx.Client(base_url=sidecar.proxy_url) as client,
        ):
            chat = {
                "model": "support",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 2,
            }
            for _ in range(4):
                client.post("/v1/chat/completions", json=chat, headers={"x-fake-latency-ms": "400"})
            wait_for(lambda: sink.received["/slack"], what="the firing message")
            assert sink.received["/slack"][0]["text"].startswith(
                "[FIRING] latency_p95 - model=support"
            )

            def resolved() -> bool:
                client.post("/v1/chat/completions", json=chat)
                return any(m["text"].startswith("[RESOLVED]") for m in sink.received["/slack"])

            wait_for(resolved, timeout_s=30, what="the resolve message")
            firing = [m for m in sink.received["/slack"] if m["text"].startswith("[FIRING]")]
            assert len(firing) == 1
    finally:
        slack.stop()
