"""``sidecar alerts list|silence|test`` against a real database and a real HTTP sink."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from click.testing import CliRunner

from sidecar.alerts.job import evaluate_round
from sidecar.cli import main
from sidecar.notifiers.delivery import LogNotifier
from sidecar.records import Transition
from sidecar.store.engine import create_engine
from sidecar.store.writes import insert_requests
from sidecar.testing.servers import start_server
from sidecar.testing.webhook_sink import WebhookSink
from tests.alerts.test_job import P95
from tests.cli.configs import config
from tests.reports.test_base import row


def test_list_shows_firing_alerts_and_a_silence_mutes_them(migrated_database_url: str) -> None:
    runner = CliRunner()
    empty = runner.invoke(main, ["alerts", "list", "--database-url", migrated_database_url])
    assert "no alert is pending or firing" in empty.output
    silenced = runner.invoke(main, ["alerts", "silence", "latency_p95", "--label", "model=support",
                                    "--for", "2h", "--database-url", migrated_database_url])  # fmt: skip
    assert silenced.exit_code == 0, silenced.output
    assert "silenced latency_p95 {'model': 'support'}" in silenced.output

    async def fire() -> list[Transition] | None:
        engine = create_engine(migrated_database_url)
        try:
            now = datetime.now(UTC)  # the silence runs from now for 2 h: evaluate inside it
            recent = [
                replace(row(i, latency=900.0), started_at=now - timedelta(seconds=30))
                for i in range(1, 21)
            ]
            await insert_requests(engine, recent)
            return await evaluate_round(engine, [P95], {"log": LogNotifier()}, now)
        finally:
            await engine.dispose()

    transitions = asyncio.run(fire())
    assert [(t.event, t.notify) for t in transitions or []] == [
        ("firing", False)
    ]  # firing, but silenced: nothing queued
    listed = runner.invoke(main, ["alerts", "list", "--database-url", migrated_database_url])
    assert "firing   latency_p95" in listed.output
    bad = runner.invoke(
        main, ["alerts", "silence", "x", "--for", "soon", "--database-url", migrated_database_url]
    )
    assert bad.exit_code == 2


def test_test_command_sends_a_marked_alert(tmp_path: Path) -> None:
    sink = WebhookSink()
    server = start_server(sink)
    try:
        config = tmp_path / "sidecar.yaml"
        config.write_text(yaml.safe_dump({"alerts": {"slack_webhook_url": f"{server.url}/slack"}}))
        result = CliRunner().invoke(
            main, ["alerts", "test", "--notifier", "slack", "--config", str(config)]
        )
        assert result.exit_code == 0, result.output
        assert sink.received["/slack"][0]["text"].startswith("[FIRING] TEST_sidecar_alert")
        missing = CliRunner().invoke(
            main, ["alerts", "test", "--notifier", "pagerduty", "--config", str(config)]
        )
        assert missing.exit_code == 2
        assert "configured: slack, log" in missing.output
    finally:
        server.stop()


def test_alerts_test_accepts_the_notifier_kind_when_there_is_one_of_it(tmp_path: Path) -> None:
    sink = WebhookSink()
    server = start_server(sink)
    try:
        path = config(tmp_path, alerts={"webhook_urls": [f"{server.url}/hook"]})
        result = CliRunner().invoke(
            main, ["alerts", "test", "--notifier", "webhook", "--config", str(path)]
        )
        assert result.exit_code == 0, result.output
        assert "webhook-0: test alert delivered" in result.output
        assert len(sink.received["/hook"]) == 1
        two = config(tmp_path, alerts={"webhook_urls": [f"{server.url}/a", f"{server.url}/b"]})
        ambiguous = CliRunner().invoke(
            main, ["alerts", "test", "--notifier", "webhook", "--config", str(two)]
        )
        assert ambiguous.exit_code == 2
        assert "2 webhook notifiers are configured: name one of webhook-0, webhook-1" in (
            ambiguous.output
        )
    finally:
        server.stop()
