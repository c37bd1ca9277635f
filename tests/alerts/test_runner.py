"""The alert loop in a running sidecar: a slow upstream pages Slack once, then resolves."""

from __future__ import annotations

from pathlib import Path

import httpx

from sidecar.testing.harness import running_sidecar
from sidecar.testing.servers import RunningServer, start_server
from sidecar.testing.webhook_sink import WebhookSink
from tests.helpers import sidecar_settings, wait_for


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
