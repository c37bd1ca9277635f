"""What an operator changes between restarts: a rule disabled (or removed) while it is firing is
resolved once, with a message that says why, and nothing about it is sent again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar.testing.harness import running_sidecar
from sidecar.testing.servers import RunningServer
from tests.helpers import sidecar_settings, wait_for
from tests.scenarios.operator import Traffic, running, start_sinks, wait_rounds

SLOW = {"x-fake-latency-ms": "200"}


def slow_traffic(mode: str, n: int) -> tuple[dict[str, Any], dict[str, str], str | None]:
    body = {"model": "support", "messages": [{"role": "user", "content": f"q{n}"}], "max_tokens": 2}
    return body, SLOW, None


@pytest.mark.slow
@pytest.mark.parametrize("change", ["disabled", "removed"])
def test_a_rule_disabled_while_firing_resolves_once_and_stays_quiet(
    upstream: RunningServer, database_url: str, tmp_path: Path, change: str
) -> None:
    sinks = start_sinks()
    rule = {"name": "slow_answers", "kind": "latency", "threshold": 100.0, "comparison": "above",
            "window_s": 5.0, "for_s": 0, "min_samples": 5, "group_by": ["adapter", "model"]}  # fmt: skip
    after = [{"name": "slow_answers", "enabled": False}] if change == "disabled" else []

    def settings(rules: list[dict[str, Any]]) -> Any:
        alerts = {"interval_s": 0.1, "log": False, "rules": rules, **sinks.alert_settings}
        return sidecar_settings(upstream.url, database_url, tmp_path / "spool", alerts=alerts)

    try:
        with (
            running_sidecar(settings([rule])) as sidecar,
            running(Traffic(sidecar.proxy_url, slow_traffic, workers=4)),
        ):
            wait_for(sinks.webhook, what="the firing notification")
        assert sinks.webhook() == [
            ("firing", "slow_answers", (("adapter", "support"), ("model", "support")))]  # fmt: skip
        with (
            running_sidecar(settings(after)) as sidecar,
            running(
                Traffic(
                    sidecar.proxy_url, slow_traffic, workers=4
                )  # still slow: only the rule went
            ),
        ):
            wait_for(lambda: len(sinks.webhook()) > 1, what="the resolved notification")
            wait_rounds([sidecar.admin_url], 10)
        assert sinks.webhook() == [
            ("firing", "slow_answers", (("adapter", "support"), ("model", "support"))),
            ("resolved", "slow_answers", (("adapter", "support"), ("model", "support"))),
        ]
        resolved = [text for state, text in sinks.slack() if state == "RESOLVED"]
        assert len(resolved) == 1
        body = sinks.app.received["/alertmanager"][-1]
        assert "no longer configured" in body["alerts"][0]["annotations"]["summary"]
    finally:
        assert sinks.server is not None
        sinks.server.stop()
