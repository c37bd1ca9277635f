"""A hostile model name from traffic reaches Slack, a webhook and the log inert.

Rows with the name go into the store, an alert round fires on them and the outbox is delivered
to a real HTTP sink shaped like Slack's incoming webhook (and to an Alertmanager-shaped one and
the log notifier): Slack gets ``&``, ``<``, ``>`` as entities in ``text`` and in every mrkdwn
block, nothing can mention a channel or draw a link, and no value starts a new line anywhere.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.alerts.job import deliver_round, evaluate_round
from sidecar.notifiers.delivery import LogNotifier, Notifier, SlackNotifier, WebhookNotifier
from sidecar.store.writes import insert_requests
from sidecar.testing.servers import RunningServer
from sidecar.testing.webhook_sink import WebhookSink
from tests.alerts.test_job import P95
from tests.alerts.test_readers import NOW, at
from tests.reports.test_base import row

HOSTILE = "<!channel> <http://evil.example|click> & co\n2026-12-03 CRITICAL sidecar: forged\u202e"


def mrkdwn_texts(message: dict[str, Any]) -> list[str]:
    """``text`` and every mrkdwn string in the blocks (what Slack parses for mentions, links)."""
    texts = [message["text"]]
    for block in message["blocks"]:
        objects = [block.get("text"), *block.get("fields", []), *block.get("elements", [])]
        texts += [o["text"] for o in objects if isinstance(o, dict) and o.get("type") == "mrkdwn"]
    return texts


async def fire_with_hostile_model(engine: AsyncEngine, channels: dict[str, Notifier]) -> None:
    slow = [at(row(i, model=HOSTILE, latency=900.0), 60) for i in range(1, 21)]
    await insert_requests(engine, slow)
    fired = await evaluate_round(engine, [P95], channels, NOW)
    assert [t.scope for t in fired or []] == [(("model", HOSTILE),)]
    async with aiohttp.ClientSession() as session:
        assert await deliver_round(engine, channels, session, NOW) == len(channels)


async def test_a_hostile_model_name_reaches_a_slack_sink_escaped(
    engine: AsyncEngine, sink: tuple[WebhookSink, RunningServer]
) -> None:
    app, server = sink
    channels: dict[str, Notifier] = {
        "slack": SlackNotifier("slack", f"{server.url}/slack"),
        "alertmanager": WebhookNotifier("alertmanager", f"{server.url}/am"),
    }
    await fire_with_hostile_model(engine, channels)
    (message,) = app.received["/slack"]
    texts = mrkdwn_texts(message)
    assert any("&lt;!channel&gt; &lt;http://evil.example|click&gt; &amp; co" in t for t in texts)
    for text in texts:
        for raw in ("<!channel>", "<http", "& co", "\u202e"):
            assert raw not in text
    assert all("\\n2026-12-03 CRITICAL" in text for text in texts if "evil.example" in text)
    assert not any("\n2026-12-03" in text for text in texts)
    header = message["blocks"][0]["text"]
    assert header["type"] == "plain_text"  # Slack parses no mentions or links in plain text
    (alert,) = app.received["/am"][0]["alerts"]
    model = alert["labels"]["model"]  # JSON for receivers: characters kept, no line breaks
    assert model.startswith("<!channel> <http://evil.example|click> & co\\n2026-12-03")
    assert "\n" not in model
    assert "\n" not in alert["annotations"]["summary"]


async def test_a_hostile_model_name_cannot_forge_a_log_line(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sidecar.notifiers"):
        await fire_with_hostile_model(engine, {"log": LogNotifier()})
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT")]
    for raw in ("\n", "\r", "\u202e"):
        assert raw not in line
    assert "model=<!channel> <http://evil.example|click> & co\\n2026-12-03 CRITICAL" in line
