"""Three `sidecar serve` processes on one Postgres database, one of them SIGKILLed and restarted
mid-traffic: every answered request is logged once, every sample judged once, every alert
transition notified once, and drift runs at most once per interval across the replicas.

The scenario runs once for the module (about a minute); each test checks one guarantee on its
outcome. Replicas 0 and 2 run throughout; replica 1 is killed (no drain) and restarted on the same
spool directory and configuration while the clients keep sending round-robin to all three.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import yaml
from psycopg import sql
from psycopg.rows import dict_row

from sidecar.fake_vllm import FakeVllmConfig, create_fake_vllm
from sidecar.testing.fake_judge import FakeJudge
from sidecar.testing.servers import RunningServer, start_server
from sidecar.testing.webhook_sink import WebhookSink
from tests.helpers import wait_for
from tests.replicas.cluster import Replica
from tests.replicas.traffic import TICKET_PATTERN, Traffic

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

DRIFT_INTERVAL_S = 2.0
CLAIM_TIMEOUT_S = 5.0  # a dead replica's judge claims are taken over after this
HOOK = "/hook"
REPLICAS = 3
VICTIM = 1


@dataclass(frozen=True, slots=True)
class JudgeCall:
    key: str  # the calling replica's judge.api_key
    at: float  # time.monotonic() when it arrived
    ticket: str  # the ticket of the request being judged


@dataclass
class RecordingJudge:
    """One FakeJudge, noting who asked (by API key), when, and about which ticket. Calls from
    ``slow_key`` take ``slow_s`` longer, so that replica is sure to have some in flight when it
    is killed."""

    judge: FakeJudge = field(default_factory=FakeJudge)
    calls: list[JudgeCall] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)
    slow_key: str | None = None
    slow_s: float = 0.5

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.judge(scope, receive, send)
            return
        arrived = time.monotonic()
        key = dict(scope["headers"]).get(b"authorization", b"").decode().removeprefix("Bearer ")
        body = bytearray()
        while True:  # read it all first: the caller may be killed while we are slow
            message = await receive()
            if message["type"] == "http.disconnect":  # killed between headers and body
                self.calls.append(JudgeCall(key, arrived, ""))
                return
            body.extend(message.get("body", b""))
            if not message.get("more_body"):
                break
        ticket = re.search(TICKET_PATTERN, body.decode(errors="replace"))
        self.calls.append(JudgeCall(key, arrived, ticket.group(0) if ticket else ""))

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        self.in_flight[key] += 1
        try:
            if key == self.slow_key:
                await asyncio.sleep(self.slow_s)
            await self.judge(scope, replay, send)
        finally:
            self.in_flight[key] -= 1


@dataclass
class Outcome:
    database_url: str
    replicas: list[Replica]
    traffic: Traffic
    judge: RecordingJudge
    sink: WebhookSink
    seconds: float  # from the first request to the last replica stopped
    spool_bytes: dict[str, float]  # per replica, once drained, before the stop
    rows_lost: dict[str, float]  # per replica, before the stop

    @property
    def victim(self) -> Replica:
        return self.replicas[VICTIM]

    def query(self, text: str, **params: Any) -> list[dict[str, Any]]:
        with psycopg.connect(self.database_url, row_factory=dict_row) as connection:
            return connection.execute(text, params).fetchall()


def judge_key(index: int) -> str:
    return f"replica-{index}"


def pid_of(claimed_by: str) -> int:
    """The process id inside a judge claim (``host:pid:random``)."""
    return int(claimed_by.rsplit(":", 2)[1])


@pytest.fixture(scope="module")
def replicas_database_url(postgres_admin_url: str) -> Iterator[str]:
    """One fresh, empty Postgres database for the module's replicas (dropped afterwards)."""
    name = f"sidecar_test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield sa.make_url(postgres_admin_url).set(database=name).render_as_string(False)
    with psycopg.connect(postgres_admin_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@dataclass(frozen=True, slots=True)
class Endpoints:
    upstream: str  # the fake vLLM
    judge: str  # the (recording) fake judge
    sink: str  # the webhook sink
    database: str  # Postgres


def write_config(workdir: Path, index: int, endpoints: Endpoints) -> Path:
    """Replica ``index``'s configuration: its own spool and judge key, ports picked at start."""
    config = {
        "upstream": {"url": endpoints.upstream, "models_refresh_s": 1},
        "proxy": {"host": "127.0.0.1", "port": 0},
        "admin": {"port": 0},
        "database": {"url": endpoints.database},
        "spool": {"dir": str(workdir / f"spool-{index}")},
        "writer": {"idle_poll_s": 0.05, "retry_initial_s": 0.05, "retry_max_s": 0.5},
        "judge": {
            "enabled": True, "base_url": f"{endpoints.judge}/v1", "model": "judge-1",
            "api_key": judge_key(index), "sample_rate": 1.0, "interval_s": 0.25,
            "batch_size": 50, "claim_timeout_s": CLAIM_TIMEOUT_S, "baseline_auto_samples": 0,
            "max_calls_per_day": 1_000_000, "max_cost_per_day_usd": 1000.0,
        },
        "alerts": {
            "interval_s": 0.5, "webhook_urls": [f"{endpoints.sink}{HOOK}"], "log": False,
            # Guaranteed to fire: every latency is above 0 ms.
            "rules": [{"name": "latency_p95", "threshold": 0, "for_s": 0, "min_samples": 5,
                       "window_s": 60}],
        },
        "drift": {"interval_s": DRIFT_INTERVAL_S, "window_s": 20, "min_samples": 10},
    }  # fmt: skip
    path = workdir / f"replica-{index}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def outcome(
    replicas_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Outcome]:
    workdir = tmp_path_factory.mktemp("replicas")
    upstream = start_server(create_fake_vllm(FakeVllmConfig()))
    judge = RecordingJudge(slow_key=judge_key(VICTIM))
    sink = WebhookSink()
    servers: list[RunningServer] = [upstream, start_server(judge), start_server(sink)]
    endpoints = Endpoints(upstream.url, servers[1].url, servers[2].url, replicas_database_url)
    replicas = [
        Replica(f"replica-{index}", write_config(workdir, index, endpoints), workdir)
        for index in range(REPLICAS)
    ]
    traffic = Traffic(replicas)
    try:
        for replica in replicas:  # all at once: they also race for the schema migration
            replica.spawn()
        for replica in replicas:
            replica.wait_ready()
        started = time.monotonic()
        traffic.start()
        run_kill_and_restart(replicas[VICTIM], traffic, judge, sink)
        traffic.stop()
        wait_until_drained(replicas, traffic, replicas_database_url, sink)
        spool_bytes = {r.name: r.metric("sidecar_log_spool_bytes") for r in replicas}
        rows_lost = {r.name: r.metric("sidecar_log_rows_lost_total") for r in replicas}
        for replica in replicas:
            replica.stop()
        seconds = time.monotonic() - started
        print(f"\nreplicas: {len(traffic.acknowledged)} answered, {len(traffic.failed)} failed, "
              f"{len(judge.calls)} judge calls, {len(sink.received[HOOK])} webhook posts, "
              f"{seconds:.1f} s from the first request to the last stop")  # fmt: skip
        yield Outcome(replicas_database_url, replicas, traffic, judge, sink, seconds,
                      spool_bytes, rows_lost)  # fmt: skip
    finally:
        traffic.stop()
        for replica in replicas:
            replica.stop()
        for server in servers:
            server.stop()


def run_kill_and_restart(
    victim: Replica, traffic: Traffic, judge: RecordingJudge, sink: WebhookSink
) -> None:
    """Kill the victim once it has answered, judged and the alert went out, while it waits for
    the judge; restart it while the clients keep sending; return once the restarted process has
    served its share."""

    def warmed_up() -> bool:
        return (
            len(traffic.acknowledged) >= 120
            and traffic.served_by[victim.proxy_url] >= 20
            and any(call.key == judge_key(VICTIM) for call in judge.calls)
            # Delivered and recorded: the sender commits just after the POST is answered; a
            # kill between the two would resend it (delivery is at least once).
            and bool(sink.arrived[HOOK])
            and time.monotonic() - sink.arrived[HOOK][0] > 1.0
            and judge.in_flight[judge_key(VICTIM)] > 0
        )

    wait_for(warmed_up, timeout_s=60, what="traffic, judgements and the first alert")
    victim.kill()
    judge.slow_key = None  # the restarted process gets answers as fast as the others
    failed = len(traffic.failed)
    wait_for(lambda: len(traffic.failed) >= failed + 3, what="clients to see the dead replica")
    victim.spawn()
    victim.wait_ready()
    acknowledged = len(traffic.acknowledged)
    wait_for(
        lambda: (
            traffic.served_by[victim.proxy_url] >= 30
            and len(traffic.acknowledged) >= acknowledged + 150
        ),
        timeout_s=60,
        what="traffic through the restarted replica",
    )


def wait_until_drained(
    replicas: list[Replica], traffic: Traffic, database_url: str, sink: WebhookSink
) -> None:
    """Bounded waits for the end state: rows, empty spools, verdicts, delivered alerts."""

    def query(text: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(database_url) as connection:
            return connection.execute(text).fetchall()

    acknowledged = set(traffic.acknowledged.values())
    wait_for(
        lambda: acknowledged <= {row[0] for row in query("SELECT id FROM requests")},
        timeout_s=30,
        what="every acknowledged request in Postgres",
    )
    wait_for(
        lambda: all(r.metric("sidecar_log_spool_bytes") == 0 for r in replicas),
        timeout_s=30,
        what="every spool to drain",
    )
    unjudged = """SELECT count(*) FROM requests r LEFT JOIN judgements j ON j.request_id = r.id
                  WHERE r.judge_sample IS NOT NULL AND (j.status IS NULL OR j.status = 'claimed')"""
    wait_for(
        lambda: query(unjudged)[0][0] == 0,
        timeout_s=CLAIM_TIMEOUT_S + 30,
        what="every sample judged (a dead replica's claims taken over)",
    )
    undelivered = "SELECT count(*) FROM alert_outbox WHERE sent_at IS NULL AND failed_at IS NULL"
    wait_for(
        lambda: sink.received[HOOK] and query(undelivered)[0][0] == 0,
        timeout_s=30,
        what="every notification delivered",
    )


def test_every_answered_request_is_logged_exactly_once(outcome: Outcome) -> None:
    traffic = outcome.traffic
    rows = outcome.query("SELECT id, client_request_id FROM requests")
    tickets = Counter(row["client_request_id"] for row in rows)
    assert [ticket for ticket, count in tickets.items() if count > 1] == []
    logged = {row["client_request_id"]: row["id"] for row in rows}
    assert {ticket: logged.get(ticket) for ticket in traffic.acknowledged} == traffic.acknowledged
    # Anything else logged is a request whose client did not get all of it (cut by the kill).
    assert set(logged) - set(traffic.acknowledged) <= set(traffic.failed)
    assert traffic.failed, "the kill happened between requests, not mid-traffic"
    assert outcome.spool_bytes == dict.fromkeys(outcome.spool_bytes, 0.0)
    survivors = {r.name for index, r in enumerate(outcome.replicas) if index != VICTIM}
    assert {name: outcome.rows_lost[name] for name in survivors} == dict.fromkeys(survivors, 0.0)


def test_every_sample_is_judged_once_and_only_a_killed_claim_is_asked_again(
    outcome: Outcome,
) -> None:
    sampled = outcome.query(
        "SELECT id, client_request_id FROM requests WHERE judge_sample IS NOT NULL"
    )
    judged = outcome.query("SELECT request_id, status, attempts, claimed_by FROM judgements")
    assert len(sampled) >= len(outcome.traffic.acknowledged)  # sample_rate 1.0
    assert sorted(row["request_id"] for row in judged) == sorted(row["id"] for row in sampled)
    assert {row["status"] for row in judged} == {"scored"}

    ticket_of = {row["id"]: row["client_request_id"] for row in sampled}
    restarted_at = outcome.victim.incarnations[1].started_at
    cut = [call for call in outcome.judge.calls if not call.ticket]
    assert [c for c in cut if c.key != judge_key(VICTIM) or c.at >= restarted_at] == []
    calls = [call for call in outcome.judge.calls if call.ticket]  # whole requests
    assert {call.ticket for call in calls} == set(ticket_of.values())
    # Who asked: each process by its key and lifetime; who recorded: the pid in claimed_by.
    asked: dict[int, list[str]] = {}
    for index, replica in enumerate(outcome.replicas):
        lives = replica.incarnations
        for number, life in enumerate(lives):
            until = lives[number + 1].started_at if number + 1 < len(lives) else float("inf")
            asked[life.pid] = [call.ticket for call in calls
                               if call.key == judge_key(index) and life.started_at <= call.at < until]  # fmt: skip
    recorded: dict[int, list[str]] = {pid: [] for pid in asked}
    for row in judged:
        recorded[pid_of(row["claimed_by"])] += [ticket_of[row["request_id"]]] * row["attempts"]
    killed = outcome.victim.incarnations[0].pid
    for pid, tickets in asked.items():
        if pid != killed:
            assert Counter(tickets) == Counter(recorded[pid]), f"process {pid}"
    # The killed process asked about some samples it never recorded: those, and only those,
    # were asked again by the replica that took the claim over.
    lost = Counter(asked[killed]) - Counter(recorded[killed])
    assert sum(row["attempts"] for row in judged) == len(calls) - sum(lost.values())
    asked_twice = {
        ticket for ticket, count in Counter(c.ticket for c in calls).items() if count > 1
    }
    assert asked_twice == set(lost)
    assert len(outcome.judge.judge.requests) == len(calls)
    assert len({pid_of(row["claimed_by"]) for row in judged}) >= 2, "one replica did all the work"


def scope_of(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k not in ("alertname", "severity")))


def test_each_alert_transition_is_notified_once(outcome: Outcome) -> None:
    posted = Counter(
        (alert["status"], alert["labels"]["alertname"], scope_of(alert["labels"]))
        for body in outcome.sink.received[HOOK]
        for alert in body["alerts"]
    )
    events = outcome.query("SELECT rule, scope, event FROM alert_events WHERE notified")
    transitions = Counter(
        ("resolved" if event["event"] == "resolved" else "firing", event["rule"],
         scope_of({str(k): str(v) for k, v in event["scope"].items()}))
        for event in events
    )  # fmt: skip
    assert posted == transitions
    assert posted[("firing", "latency_p95", (("model", "tiny"),))] == 1
    outbox = outcome.query(
        "SELECT attempts, sent_at FROM alert_outbox WHERE notifier = 'webhook-0'"
    )
    assert len(outbox) == sum(posted.values())
    assert all(row["sent_at"] is not None and row["attempts"] == 1 for row in outbox)


def test_drift_runs_at_most_once_per_interval_across_replicas(outcome: Outcome) -> None:
    runs = outcome.query(
        "SELECT run_id, min(checked_at) AS at FROM drift_checks GROUP BY run_id ORDER BY at"
    )
    assert len(runs) >= 3, "drift did not run"
    gaps = [
        (later["at"] - earlier["at"]).total_seconds() for earlier, later in itertools.pairwise(runs)
    ]
    assert min(gaps) >= DRIFT_INTERVAL_S
    # Three uncoordinated replicas would run about three times as often.
    assert len(runs) <= outcome.seconds / DRIFT_INTERVAL_S + 1
