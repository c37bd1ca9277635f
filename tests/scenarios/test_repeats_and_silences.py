"""A breach that goes on: the still-firing alert is re-sent every ``repeat_interval_s`` and no
sooner, and a scope silenced from the CLI (``sidecar alerts silence``) sends nothing at all
while ``sidecar alerts list`` still shows it firing."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sidecar.cli import main
from sidecar.testing.harness import running_sidecar
from sidecar.testing.servers import RunningServer
from tests.helpers import sidecar_settings, wait_for
from tests.scenarios.operator import SLACK_PATH, Traffic, running, start_sinks, wait_rounds

REPEAT_S = 2.0
HELD_S = 7.0  # FIRING, then a repeat every 2 s: three at least


def slow_on_both_adapters(mode: str, n: int) -> tuple[dict[str, Any], dict[str, str], None]:
    adapter = ("support", "legal")[n % 2]
    body = {"model": adapter, "messages": [{"role": "user", "content": f"q{n}"}], "max_tokens": 2}
    return body, {"x-fake-latency-ms": "200"}, None


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_a_held_breach_repeats_on_its_interval_and_a_silenced_scope_stays_quiet(
    upstream: RunningServer, database_url: str, tmp_path: Path
) -> None:
    sinks = start_sinks()
    rule = {"name": "slow_answers", "kind": "latency", "threshold": 100.0, "comparison": "above",
            "window_s": 4.0, "for_s": 0, "min_samples": 5, "repeat_interval_s": REPEAT_S,
            "group_by": ["adapter"]}  # fmt: skip
    alerts = {"interval_s": 0.1, "log": False, "rules": [rule], **sinks.alert_settings}
    settings = sidecar_settings(upstream.url, database_url, tmp_path / "spool", alerts=alerts)
    try:
        with running_sidecar(settings) as sidecar:
            cli("alerts", "silence", "slow_answers", "--label", "adapter=legal", "--for", "30m",
                "--database-url", database_url, "--comment", "known: legal is slow")  # fmt: skip
            with running(Traffic(sidecar.proxy_url, slow_on_both_adapters, workers=4)):
                wait_for(sinks.webhook, what="the firing notification")
                first = time.monotonic()
                while time.monotonic() - first < HELD_S:
                    wait_rounds([sidecar.admin_url], 5)
            wait_rounds([sidecar.admin_url], 5)
            listed = cli("alerts", "list", "--database-url", database_url)

        support = ("firing", "slow_answers", (("adapter", "support"),))
        sent = sinks.webhook()
        assert set(sent) == {support}, sent  # FIRING, then repeats only
        assert len(sent) >= 4, sent
        slack = sinks.slack()
        assert {state for state, _ in slack} == {"FIRING"}, slack
        assert len(slack) == len(sent)
        assert all("legal" not in text for _, text in slack)
        times = sinks.app.arrived[SLACK_PATH]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        # Never sooner than the interval, and not much later: 0.1 s rounds, delivery in between.
        assert all(REPEAT_S - 0.2 <= gap <= REPEAT_S + 1.0 for gap in gaps), gaps
        # The silenced scope's state moved on all the same: firing, and listed as such.
        assert "adapter=legal" in listed
        assert "adapter=support" in listed
        assert listed.count("firing") >= 2
    finally:
        assert sinks.server is not None
        sinks.server.stop()
