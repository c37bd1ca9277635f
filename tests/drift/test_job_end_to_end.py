"""Through the real sidecar: the writer stores features, a drift baseline is pinned, the traffic
switches template and topic, `sidecar drift run` names what moved, the drift alert fires, and
the sidecar's gauges show the run although the CLI, not the sidecar, made it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import openai
from click.testing import CliRunner

from sidecar.cli import main
from sidecar.testing.harness import start_sidecar
from sidecar.testing.servers import RunningServer
from sidecar.testing.topics import (
    MONEY_WIDE,
    SUPPORT,
    TRAVEL,
    TRAVEL_WIDE,
    carrier_question,
    question,
)
from tests.helpers import sidecar_settings, wait_for, wait_for_rows
from tests.scenarios.operator import SLACK_PATH, WEBHOOK_PATH, scrape, start_sinks


def ask(client: openai.OpenAI, rng: random.Random, n: int, system: str, words: list[str],
        length: tuple[int, int]) -> None:  # fmt: skip
    for _ in range(n):
        question_text = question(rng, words, length)
        client.chat.completions.create(
            model="tiny", messages=[{"role": "system", "content": system},
                                    {"role": "user", "content": question_text}],
        )  # fmt: skip


def test_a_traffic_shift_is_named_and_alerted(
    upstream: RunningServer, database_url: str, tmp_path: Path
) -> None:
    settings = sidecar_settings(
        upstream.url, database_url, tmp_path / "spool",
        alerts={"interval_s": 0.2}, drift={"interval_s": 3600},
    )  # fmt: skip
    sidecar = start_sidecar(settings)
    runner = CliRunner()
    database = ["--database-url", database_url]
    try:
        client = openai.OpenAI(base_url=f"{sidecar.proxy_url}/v1", api_key="k")
        rng = random.Random(3)
        ask(client, rng, 60, "You are a support agent.", SUPPORT, (5, 12))
        rows = wait_for_rows(database_url, 60, "features IS NOT NULL")
        assert rows[0]["features"]["system_prompt_hash"]
        assert rows[0]["features"]["user_words"]
        pinned = runner.invoke(main, ["baseline", "set", "drift", "--since", "1h", *database])
        assert pinned.exit_code == 0, pinned.output
        assert "drift baseline set: model=tiny adapter=-" in pinned.output
        ask(client, rng, 60, "You are a travel assistant. Be brief.", TRAVEL, (15, 30))
        wait_for_rows(database_url, 120, "features IS NOT NULL")
        run = runner.invoke(main, ["drift", "run", *database])
        assert run.exit_code == 0, run.output
        assert "model=tiny adapter=- vs baseline reference:" in run.output
        assert "system_prompt_hash" in run.output
        assert "user_words" in run.output
        listed = wait_for(lambda: out if "firing   drift" in (out := runner.invoke(
                              main, ["alerts", "list", *database]).output) else None,
                          what="the drift alert")  # fmt: skip
        assert "model=tiny" in listed
        # The run came from the CLI, not from this sidecar's loop: /metrics shows it anyway.
        drifted = ("sidecar_drift_detected", (("feature", "user_words"), ("model", "tiny")))
        metrics = wait_for(lambda: found if (found := scrape(sidecar.admin_url)).get(drifted) == 1.0
                           else None, timeout_s=30, what="the CLI's run on /metrics")  # fmt: skip
        assert metrics[("sidecar_drift_share", (("model", "tiny"),))] > 0.0
    finally:
        sidecar.stop()
    report = runner.invoke(
        main, ["report", "drift", "--since", "1h", "--format", "json", *database]
    )
    assert report.exit_code == 0, report.output
    by_feature = {row["feature"]: row for row in json.loads(report.output)["rows"]}
    assert by_feature["system_prompt_hash"]["verdict"] == "DRIFT"
    assert by_feature["user_words"]["verdict"] == "DRIFT"
    assert by_feature["script"]["verdict"] == "ok"  # latin in both windows
    assert any(word in by_feature["user_words"]["top_movers"] for word in TRAVEL), by_feature[
        "user_words"
    ]["top_movers"]


def test_a_topic_change_the_words_miss_fires_the_alert_on_the_prompt_embedding(
    upstream: RunningServer, database_url: str, tmp_path: Path
) -> None:
    rule = {"name": "drift", "features": ["prompt_embedding"], "threshold": 0, "min_samples": 1}
    sinks = start_sinks()
    settings = sidecar_settings(
        upstream.url, database_url, tmp_path / "spool",
        alerts={"interval_s": 0.2, "rules": [rule], **sinks.alert_settings},
        drift={"interval_s": 3600, "embeddings": {"enabled": True}},
    )  # fmt: skip
    sidecar = start_sidecar(settings)
    runner = CliRunner()
    database = ["--database-url", database_url]
    system = "You are a helpful assistant."
    try:
        client = openai.OpenAI(base_url=f"{sidecar.proxy_url}/v1", api_key="k")
        rng = random.Random(11)

        def ask_about(words: list[str]) -> None:
            for _ in range(50):
                client.chat.completions.create(model="tiny", messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": carrier_question(rng, words)}])  # fmt: skip

        ask_about(MONEY_WIDE)
        rows = wait_for_rows(database_url, 50, "prompt_embedding IS NOT NULL")
        assert len(rows[0]["prompt_embedding"]) == 257
        pinned = runner.invoke(main, ["baseline", "set", "drift", "--since", "1h", *database])
        assert pinned.exit_code == 0, pinned.output
        ask_about(TRAVEL_WIDE)
        wait_for_rows(database_url, 100, "prompt_embedding IS NOT NULL")
        run = runner.invoke(main, ["drift", "run", *database])
        assert run.exit_code == 0, run.output
        assert "prompt_embedding" in run.output
        listed = wait_for(lambda: out if "firing   drift" in (out := runner.invoke(
                              main, ["alerts", "list", *database]).output) else None,
                          what="the drift alert")  # fmt: skip
        assert "model=tiny" in listed
        # What reached Slack and the webhook names the feature and quotes prompts that moved.
        wait_for(lambda: sinks.slack() and sinks.webhook(), what="the drift notifications")
        ((state, _),) = sinks.slack()
        message = sinks.app.received[SLACK_PATH][0]
        shown = " ".join(block["text"]["text"] for block in message["blocks"]
                         if block["type"] == "section" and "text" in block)  # fmt: skip
        assert state == "FIRING"
        assert "drifted: prompt_embedding (mmd " in shown, shown
        assert any(f" {word} " in shown.split("prompts that moved:")[1] for word in TRAVEL_WIDE)
        described = sinks.app.received[WEBHOOK_PATH][0]["alerts"][0]["annotations"]["description"]
        assert described.startswith("drifted: prompt_embedding"), described
    finally:
        sidecar.stop()
        assert sinks.server is not None
        sinks.server.stop()
    report = runner.invoke(
        main, ["report", "drift", "--since", "1h", "--format", "json", *database]
    )
    assert report.exit_code == 0, report.output
    by_feature = {row["feature"]: row for row in json.loads(report.output)["rows"]}
    assert by_feature["user_words"]["verdict"] == "ok"  # the words alone do not see it
    assert by_feature["system_prompt_hash"]["verdict"] == "ok"
    assert by_feature["prompt_embedding"]["verdict"] == "DRIFT"
    moved = by_feature["prompt_embedding"]["top_movers"]
    assert any(f" {word} " in moved for word in TRAVEL_WIDE), moved
