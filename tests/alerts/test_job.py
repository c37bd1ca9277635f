"""An alert round end to end on SQLite and Postgres: state, events, outbox, delivery to a real
HTTP sink with Slack's and Alertmanager's rules (429 then success, permanent 404)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from urllib.parse import urlsplit

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.alerts.job import deliver_round, evaluate_round
from sidecar.alerts.readers import DEFAULT_RULES
from sidecar.notifiers.delivery import Notifier, SlackNotifier, WebhookNotifier
from sidecar.store.engine import create_engine
from sidecar.store.errors import is_connectivity_error
from sidecar.store.writes import insert_requests
from sidecar.testing.servers import RunningServer
from sidecar.testing.tcp_relay import tcp_relay
from sidecar.testing.webhook_sink import WebhookSink
from tests.alerts.test_readers import NOW, at
from tests.reports.test_base import row

P95 = dataclasses.replace(
    DEFAULT_RULES[0], spec=dataclasses.replace(DEFAULT_RULES[0].spec, for_s=0, min_samples=10)
)


def notifiers(server: RunningServer) -> dict[str, Notifier]:
    return {"slack": SlackNotifier("slack", f"{server.url}/slack"),
            "alertmanager": WebhookNotifier("alertmanager", f"{server.url}/am"),
            "broken": SlackNotifier("broken", f"{server.url}/gone")}  # fmt: skip


async def count(engine: AsyncEngine, sql: str) -> list[tuple[object, ...]]:
    async with engine.connect() as connection:
        return [tuple(r) for r in (await connection.execute(sa.text(sql))).all()]


async def test_fire_deliver_with_retries_then_resolve(
    engine: AsyncEngine, sink: tuple[WebhookSink, RunningServer]
) -> None:
    app, server = sink
    app.script["/slack"].append((429, "rate_limited", {"Retry-After": "2"}))
    app.script["/gone"].append((404, "no_service", {}))
    await insert_requests(engine, [at(row(i, latency=900.0), 60) for i in range(1, 21)])
    channels = notifiers(server)
    fired = await evaluate_round(engine, [P95], channels, NOW)
    assert [(t.event, t.scope) for t in fired or []] == [("firing", (("model", "support"),))]
    async with aiohttp.ClientSession() as session:
        assert await deliver_round(engine, channels, session, NOW) == 1
        assert (
            await deliver_round(engine, channels, session, NOW + timedelta(seconds=1)) == 0
        )  # not due yet
        assert (
            await deliver_round(engine, channels, session, NOW + timedelta(seconds=3)) == 1
        )  # slack retried
    assert len(app.received["/slack"]) == 2
    assert app.received["/slack"][1]["text"].startswith("[FIRING] latency_p95")
    assert app.received["/am"][0]["version"] == "4"
    assert app.received["/am"][0]["alerts"][0]["labels"]["model"] == "support"
    outcome = await count(engine, "SELECT notifier, sent_at IS NOT NULL, failed_at IS NOT NULL, attempts, "
                                  "last_error FROM alert_outbox ORDER BY id")  # fmt: skip
    assert [(n, bool(s), bool(f), a) for n, s, f, a, _ in outcome] == [
        ("slack", True, False, 2), ("alertmanager", True, False, 1), ("broken", False, True, 1)]  # fmt: skip
    assert "404 no_service" in str(outcome[2][4])
    # Latency recovers: the next window holds only fast requests.
    later = NOW + timedelta(minutes=10)
    await insert_requests(engine, [dataclasses.replace(at(row(100 + i, latency=50.0), 60),
                                                       started_at=later - timedelta(seconds=30)) for i in range(20)])  # fmt: skip
    resolved = await evaluate_round(engine, [P95], channels, later)
    assert [t.event for t in resolved or []] == ["resolved"]
    async with aiohttp.ClientSession() as session:
        await deliver_round(engine, channels, session, later)
    assert app.received["/slack"][-1]["text"].startswith("[RESOLVED]")
    events = await count(engine, "SELECT event, notified FROM alert_events ORDER BY id")
    assert [(e, bool(n)) for e, n in events] == [("firing", True), ("resolved", True)]


async def test_restart_mid_firing_sends_nothing_twice(
    engine: AsyncEngine, sink: tuple[WebhookSink, RunningServer]
) -> None:
    _, server = sink
    await insert_requests(engine, [at(row(i, latency=900.0), 60) for i in range(1, 21)])
    channels = notifiers(server)
    await evaluate_round(engine, [P95], channels, NOW)
    again = await evaluate_round(engine, [P95], channels, NOW + timedelta(seconds=30))
    assert again == []  # state came back from the table: still firing, nothing new
    assert (await count(engine, "SELECT count(*) FROM alert_outbox"))[0][0] == 3


async def test_keep_firing_for_survives_a_restart_and_resolves_once(
    engine: AsyncEngine, sink: tuple[WebhookSink, RunningServer]
) -> None:
    """Each round is a fresh load from ``alert_state`` (as after a restart): the time the
    condition turned false must come back from the table, or the rule never resolves."""
    _, server = sink
    rule = dataclasses.replace(P95, spec=dataclasses.replace(P95.spec, keep_firing_for_s=120))
    await insert_requests(engine, [at(row(i, latency=900.0), 60) for i in range(1, 21)])
    channels = notifiers(server)
    assert [t.event for t in await evaluate_round(engine, [rule], channels, NOW) or []] == [
        "firing"
    ]
    later = NOW + timedelta(minutes=10)
    await insert_requests(engine, [dataclasses.replace(at(row(100 + i, latency=50.0), 60),
                                                       started_at=later - timedelta(seconds=30)) for i in range(20)])  # fmt: skip
    for seconds in (0, 60, 119):  # clear, but not for 120 s yet
        assert (
            await evaluate_round(engine, [rule], channels, later + timedelta(seconds=seconds)) == []
        )
    resolved = await evaluate_round(engine, [rule], channels, later + timedelta(seconds=120))
    assert [t.event for t in resolved or []] == ["resolved"]
    events = await count(engine, "SELECT event FROM alert_events ORDER BY id")
    assert events == [("firing",), ("resolved",)]


async def test_two_evaluators_at_once_queue_one_notification(
    engine: AsyncEngine, sink: tuple[WebhookSink, RunningServer]
) -> None:
    _, server = sink
    await insert_requests(engine, [at(row(i, latency=900.0), 60) for i in range(1, 21)])
    channels = notifiers(server)
    await asyncio.gather(*(evaluate_round(engine, [P95], channels, NOW) for _ in range(2)))
    assert (await count(engine, "SELECT count(*) FROM alert_outbox"))[0][0] == 3
    assert (await count(engine, "SELECT count(*) FROM alert_events"))[0][0] == 1


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_round_the_database_cannot_serve_changes_nothing(
    engine: AsyncEngine, migrated_database_url: str, sink: tuple[WebhookSink, RunningServer]
) -> None:
    """Postgres goes away mid-incident: the round fails as a connectivity error (the loop skips
    it and counts it), and when the database is back the alert is still firing: no false
    "resolved", nothing sent twice."""
    _, server = sink
    await insert_requests(engine, [at(row(i, latency=900.0), 60) for i in range(1, 21)])
    channels = notifiers(server)
    await evaluate_round(engine, [P95], channels, NOW)
    parts = urlsplit(migrated_database_url)
    with tcp_relay(parts.hostname or "127.0.0.1", parts.port or 5432) as relay:
        relayed = create_engine(migrated_database_url.replace(f":{parts.port}/", f":{relay.port}/"))
        relay.cut()
        with pytest.raises(Exception) as failure:  # noqa: PT011 - whatever the driver raises
            await evaluate_round(relayed, [P95], channels, NOW + timedelta(minutes=10))
        assert is_connectivity_error(failure.value)
        relay.restore()
        again = await evaluate_round(relayed, [P95], channels, NOW + timedelta(seconds=30))
        await relayed.dispose()
    assert again == []
    assert await count(engine, "SELECT event FROM alert_events") == [("firing",)]
    assert await count(engine, "SELECT status FROM alert_state") == [("firing",)]
