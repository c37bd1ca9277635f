"""The incident script (sidecar/testing/incident.py, also `sidecar demo --incident`) through a
real sidecar, watched as an operator would: a latency spike on one adapter, a format regression
on the other and a topic drift each reach Slack and the webhook exactly once, with the labels of
the scope at fault and of no other, and each clears exactly once when its phase ends."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sidecar.cli import main
from sidecar.testing.harness import running_sidecar
from sidecar.testing.incident import (
    COMPLIANCE_RULE,
    DRIFT_RULE,
    EXPECTED,
    HOLD_ROUNDS,
    LATENCY_RULE,
    Incident,
    IncidentTraffic,
    incident_sections,
    notices,
)
from sidecar.testing.servers import RunningServer
from tests.helpers import sidecar_settings
from tests.scenarios.operator import WEBHOOK_PATH, scrape, start_sinks, wait_rounds


@pytest.mark.slow
def test_each_fault_of_the_incident_alerts_its_own_scope_once_and_clears_once(
    upstream: RunningServer, database_url: str, tmp_path: Path
) -> None:
    sinks = start_sinks()
    sections = incident_sections(tmp_path)
    sections["alerts"] |= {"log": False, **sinks.alert_settings}
    config = tmp_path / "sidecar.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": database_url},
                                      "drift": sections["drift"]}))  # fmt: skip
    runner = CliRunner()

    def cli(args: list[str]) -> str:
        result = runner.invoke(main, [*args, "--config", str(config)])
        assert result.exit_code == 0, result.output
        return result.output

    told: list[str] = []
    settings = sidecar_settings(upstream.url, database_url, tmp_path / "spool", **sections)
    try:
        with running_sidecar(settings) as sidecar:
            traffic = IncidentTraffic(sidecar.proxy_url).start()
            try:
                received = lambda: notices(sinks.app.received[WEBHOOK_PATH])  # noqa: E731
                Incident(traffic, sidecar.admin_url, received, cli, told.append).play()
            finally:
                traffic.stop()
            wait_rounds([sidecar.admin_url], HOLD_ROUNDS)  # nothing more follows
            metrics = scrape(sidecar.admin_url)
            listed = cli(["alerts", "list"])
    finally:
        assert sinks.server is not None
        sinks.server.stop()

    assert traffic.failures == []
    # Each fault once, each recovery once, in the order they happened, nothing else:
    # latency only for adapter=support, compliance only for adapter=legal.
    assert notices(sinks.app.received[WEBHOOK_PATH]) == list(EXPECTED)
    slack = sinks.slack()
    assert [state for state, _ in slack] == ["FIRING", "RESOLVED"] * 3
    for (_, text), notice in zip(slack, EXPECTED, strict=True):
        scope = ", ".join(f"{label}={value}" for label, value in notice.labels)
        assert f"{notice.rule} - {scope} " in text, text
    drift_runs = [line for line in told if "vs baseline reference" in line]
    assert len(drift_runs) == 2, told
    moved = drift_runs[0].splitlines()
    assert any("adapter=support" in line and "user_words" in line for line in moved), moved
    assert not any("adapter=legal" in line and "user_words" in line for line in moved), moved
    assert not any("user_words" in line for line in drift_runs[1].splitlines()), drift_runs[1]
    for rule in (LATENCY_RULE, COMPLIANCE_RULE, DRIFT_RULE):
        assert metrics[("sidecar_alerts_firing", (("rule", rule),))] == 0.0
    assert "no alert is pending or firing" in listed, listed


@pytest.mark.slow
def test_demo_incident_prints_each_alert_once_as_it_fires_and_as_it_clears() -> None:
    result = CliRunner().invoke(main, ["demo", "--incident"])
    assert result.exit_code == 0, result.output
    for notice in EXPECTED:
        assert result.output.count(f"   {notice}\n") == 1, result.output
    assert "6 notifications, 3 fired and 3 cleared, each once" in result.output
    assert "$ sidecar drift run" in result.output
