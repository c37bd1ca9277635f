"""The alert, judge and drift loops through a Postgres that goes away and comes back, many rounds
on either side, watched from the outside: the sinks, the fake judge's calls, ``/metrics`` and
the tables an operator queries. The sidecar reaches Postgres through a TCP relay the test cuts
(every connection dropped, new ones refused) and restores.

Alerts: a breach fires once; ten and more rounds skipped during the outage send nothing, resolve
nothing; recovery resolves once. Judge: a round whose verdicts come back while the database is
away keeps them and writes them when it answers: every sample is judged exactly once, none lost,
none twice. Drift: the loop outlives the outage, runs again once the database is back, and never
runs twice within one ``drift.interval_s``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from sidecar.alerts.readers import DEFAULT_RULES
from sidecar.testing.fake_judge import FakeJudge
from sidecar.testing.harness import running_sidecar
from sidecar.testing.servers import RunningServer, start_server
from sidecar.testing.tcp_relay import TcpRelay, tcp_relay
from tests.helpers import sidecar_settings, sync_url, wait_for
from tests.scenarios.operator import Traffic, running, scrape, start_sinks, wait_rounds

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]
SKIPPED_ROUNDS = 10
BUILT_IN_RULES = tuple(definition.spec.name for definition in DEFAULT_RULES)


@pytest.fixture
def relayed(database_url: str) -> Iterator[tuple[TcpRelay, str]]:
    """A relay to the test's Postgres database, and the database's URL through it."""
    parts = sa.make_url(database_url)
    with tcp_relay(parts.host or "127.0.0.1", parts.port or 5432) as relay:
        yield relay, parts.set(port=relay.port).render_as_string(hide_password=False)


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Errors logged: an outage is expected, a loop failing on it (or crashing) is not."""
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


def rounds(admin_url: str, loop: str, result: str) -> float:
    return scrape(admin_url).get((f"sidecar_{loop}_rounds_total", (("result", result),)), 0.0)


def wait_loop_rounds(admin_url: str, loop: str, result: str, count: int) -> None:
    first = rounds(admin_url, loop, result)
    wait_for(lambda: rounds(admin_url, loop, result) >= first + count, timeout_s=60,
             what=f"{count} {result} {loop} rounds")  # fmt: skip


def query(database_url: str, sql: str) -> list[Any]:
    engine = sa.create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(sql)))
    finally:
        engine.dispose()


def slow_or_fast(mode: str, n: int) -> tuple[dict[str, Any], dict[str, str], str | None]:
    body = {"model": "tiny", "messages": [{"role": "user", "content": f"q{n}"}], "max_tokens": 4}
    return body, ({"x-fake-latency-ms": "400"} if mode == "breach" else {}), None


def test_an_outage_during_a_breach_neither_resolves_nor_refires_the_alert(
    upstream: RunningServer,
    database_url: str,
    relayed: tuple[TcpRelay, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay, through_relay = relayed
    sinks = start_sinks()
    rule = {"name": "slow", "kind": "latency", "threshold": 150.0, "comparison": "above",
            "window_s": 4.0, "for_s": 0, "min_samples": 10, "repeat_interval_s": 3600}  # fmt: skip
    rules = [*({"name": name, "enabled": False} for name in BUILT_IN_RULES), rule]
    settings = sidecar_settings(
        upstream.url, through_relay, tmp_path / "spool",
        alerts={"interval_s": 0.1, "log": False, "rules": rules, **sinks.alert_settings},
        drift={"enabled": False},
    )  # fmt: skip
    try:
        with (
            running_sidecar(settings) as sidecar,
            running(Traffic(sidecar.proxy_url, slow_or_fast, workers=8)) as traffic,
        ):
            admin = sidecar.admin_url
            wait_for(lambda: sinks.webhook_counts()[("firing", "slow", (("model", "tiny"),))],
                     timeout_s=60, what="the alert firing")  # fmt: skip
            wait_rounds([admin], 10)
            relay.cut()
            wait_loop_rounds(admin, "alert", "skipped", SKIPPED_ROUNDS)
            relay.restore()
            wait_rounds([admin], 10)  # the spooled rows are written; still breaching
            during = sinks.webhook_counts()
            traffic.mode = "recover"
            wait_for(lambda: sinks.webhook_counts()[("resolved", "slow", (("model", "tiny"),))],
                     timeout_s=60, what="the alert resolved")  # fmt: skip
            wait_rounds([admin], 10)
    finally:
        assert sinks.server is not None
        sinks.server.stop()
    scope = (("model", "tiny"),)
    assert during == Counter({("firing", "slow", scope): 1}), during
    assert sinks.webhook_counts() == Counter(
        {("firing", "slow", scope): 1, ("resolved", "slow", scope): 1}
    )
    assert [state for state, _ in sinks.slack()] == ["FIRING", "RESOLVED"]
    assert errors_logged(caplog) == []


@dataclass
class GatedJudge:
    """The fake judge behind a gate: while it is closed, calls wait, in flight, until it opens."""

    judge: FakeJudge = field(default_factory=FakeJudge)
    gate: threading.Event = field(default_factory=threading.Event)
    waiting: int = 0

    def __post_init__(self) -> None:
        self.gate.set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.waiting += 1
            while not self.gate.is_set():
                await asyncio.sleep(0.01)
            self.waiting -= 1
        await self.judge(scope, receive, send)

    def calls_per_answer(self) -> Counter[int]:
        """How many times the judge was asked about each ``answer-N``."""
        asked = [re.search(r"answer-(\d+) ", request["messages"][-1]["content"])
                 for request in list(self.judge.requests)]  # fmt: skip
        return Counter(int(found.group(1)) for found in asked if found)


def test_verdicts_that_come_back_during_an_outage_are_kept_and_every_sample_is_judged_once(
    upstream: RunningServer,
    database_url: str,
    relayed: tuple[TcpRelay, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay, through_relay = relayed
    judge = GatedJudge()
    judge_server = start_server(judge)
    settings = sidecar_settings(
        upstream.url, through_relay, tmp_path / "spool",
        judge={"enabled": True, "base_url": f"{judge_server.url}/v1", "model": "judge-1",
               "sample_rate": 1.0, "interval_s": 0.1, "batch_size": 5,
               "baseline_auto_samples": 0},
        alerts={"enabled": False}, drift={"enabled": False},
    )  # fmt: skip
    sent = 0

    def send(client: httpx.Client, count: int) -> None:
        nonlocal sent
        for _ in range(count):
            body = {"model": "tiny", "max_tokens": 8,
                    "messages": [{"role": "user", "content": f"question {sent}"}]}  # fmt: skip
            answer = {"x-fake-output": f"answer-{sent} quality=4"}
            assert client.post("/v1/chat/completions", json=body, headers=answer).status_code == 200
            sent += 1

    try:
        with (
            running_sidecar(settings) as sidecar,
            httpx.Client(base_url=sidecar.proxy_url, timeout=30) as client,
        ):
            admin = sidecar.admin_url
            send(client, 15)
            wait_for(lambda: len(judge.calls_per_answer()) >= 10, timeout_s=60, what="10 judged")
            judge.gate.clear()  # the next round's calls stay in flight...
            send(client, 10)
            wait_for(lambda: judge.waiting > 0, timeout_s=60, what="a judge call in flight")
            relay.cut()  # ...while the database goes away,
            judge.gate.set()  # and their verdicts come back to a sidecar that cannot store them
            send(client, 10)  # spooled
            wait_loop_rounds(admin, "judge", "skipped", SKIPPED_ROUNDS)
            relay.restore()
            send(client, 10)
            scored = "SELECT count(*) FROM judgements WHERE status = 'scored'"
            wait_for(lambda: query(database_url, scored)[0][0] >= sent, timeout_s=60,
                     what=f"all {sent} samples judged")  # fmt: skip
            wait_loop_rounds(admin, "judge", "ok", 10)
    finally:
        judge_server.stop()
    calls = judge.calls_per_answer()
    assert calls == Counter(dict.fromkeys(range(sent), 1)), calls  # none lost, none twice
    stored = query(database_url, "SELECT request_id, status, score FROM judgements")
    assert len(stored) == sent
    assert {(status, score) for _, status, score in stored} == {("scored", 4.0)}
    assert errors_logged(caplog) == []


def test_the_drift_loop_outlives_an_outage_and_never_runs_twice_in_one_interval(
    upstream: RunningServer,
    database_url: str,
    relayed: tuple[TcpRelay, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay, through_relay = relayed
    interval_s = 1.0
    settings = sidecar_settings(
        upstream.url, through_relay, tmp_path / "spool",
        drift={"interval_s": interval_s, "window_s": 30.0, "min_samples": 10},
        alerts={"enabled": False},
    )  # fmt: skip

    def runs() -> list[tuple[str, Any]]:
        found = query(database_url, "SELECT DISTINCT run_id, checked_at FROM drift_checks")
        return sorted(((run_id, at) for run_id, at in found), key=lambda run: run[1])

    def chat(mode: str, n: int) -> tuple[dict[str, Any], dict[str, str], str | None]:
        words = ("billing invoice refund", "flight hotel booking")[n % 2]
        body = {"model": "tiny", "messages": [{"role": "user", "content": words}]}
        return body, {}, None

    with (
        running_sidecar(settings) as sidecar,
        running(Traffic(sidecar.proxy_url, chat, workers=2, pause_s=0.05)),
    ):
        admin = sidecar.admin_url
        wait_for(lambda: runs() and scrape(admin).get(
            ("sidecar_drift_share", (("model", "tiny"),))) is not None,
            timeout_s=60, what="a first drift run on /metrics")  # fmt: skip
        relay.cut()
        wait_loop_rounds(admin, "drift", "skipped", 3)
        before = runs()
        ok = rounds(admin, "drift", "ok")
        relay.restore()
        wait_for(lambda: len(runs()) >= len(before) + 2 and rounds(admin, "drift", "ok") >= ok + 2,
                 timeout_s=60, what="two drift runs after the outage")  # fmt: skip
        metrics = scrape(admin)
        after = runs()
    assert metrics[("sidecar_drift_share", (("model", "tiny"),))] >= 0.0
    newest = max(at for _, at in after)
    assert newest > max(at for _, at in before)
    gaps = [(b - a).total_seconds() for (_, a), (_, b) in itertools.pairwise(after)]
    assert all(gap >= interval_s for gap in gaps), gaps
    assert errors_logged(caplog) == []
