"""The job loop: rounds on a cadence, counted by outcome; failures logged once, slow rounds skipped
ticks, cancellation stops the round in progress. The wait between rounds is a manual ticker."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.metrics import SidecarMetrics
from sidecar.scheduler import Round, run_every
from sidecar.testing.harness import running_sidecar
from sidecar.testing.servers import RunningServer
from tests.helpers import sidecar_settings, wait_for

START = datetime(2026, 1, 1, tzinfo=UTC)


class Ticker:
    """Stands in for ``asyncio.sleep``: the loop waits until the test calls :meth:`tick`."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self._wake: asyncio.Future[None] | None = None
        self._asleep = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self._wake = asyncio.get_running_loop().create_future()
        self._asleep.set()
        await self._wake

    async def tick(self) -> None:
        """One interval passes; returns once the round due is under way (or skipped) and the
        loop waits for the next interval."""
        await self._asleep.wait()
        self._asleep.clear()
        assert self._wake is not None
        self._wake.set_result(None)
        await self._asleep.wait()
        for _ in range(10):  # let the round started run to its first real wait
            await asyncio.sleep(0)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def rounds(metrics: SidecarMetrics, job: str = "test") -> dict[str, float]:
    found = {}
    for outcome in ("ok", "failed", "skipped"):
        value = metrics.registry.get_sample_value(
            "sidecar_job_rounds_total", {"job": job, "outcome": outcome}
        )
        found[outcome] = value if value is not None else -1.0
    return found


def start(name: str, one_round: Round, metrics: SidecarMetrics, ticker: Ticker,
          **options: Any) -> asyncio.Task[None]:  # fmt: skip
    return asyncio.create_task(
        run_every(name, options.pop("interval_s", 1.0), one_round, metrics=metrics,
                  sleep=ticker.sleep, **options)
    )  # fmt: skip


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_each_interval_runs_one_round_with_the_clocks_now_and_counts_it_ok() -> None:
    metrics, ticker, clock = SidecarMetrics(), Ticker(), Clock()
    seen: list[datetime] = []

    async def one_round(now: datetime) -> None:
        seen.append(now)

    task = start("test", one_round, metrics, ticker, interval_s=2.5, clock=clock)
    for _ in range(3):
        await ticker.tick()
    assert seen == [START + timedelta(seconds=n) for n in (1, 2, 3)]
    assert rounds(metrics) == {"ok": 3.0, "failed": 0.0, "skipped": 0.0}
    assert set(ticker.waits) == {2.5}
    await stop(task)


async def test_every_outcome_is_exported_at_zero_before_the_first_round() -> None:
    metrics, ticker = SidecarMetrics(), Ticker()

    async def one_round(now: datetime) -> None:
        pass

    task = start("test", one_round, metrics, ticker)
    await asyncio.sleep(0)
    assert rounds(metrics) == {"ok": 0.0, "failed": 0.0, "skipped": 0.0}
    await stop(task)


async def test_nothing_runs_before_ready() -> None:
    metrics, ticker, ready = SidecarMetrics(), Ticker(), asyncio.Event()
    seen: list[datetime] = []

    async def one_round(now: datetime) -> None:
        seen.append(now)

    task = start("test", one_round, metrics, ticker, ready=ready)
    for _ in range(5):
        await asyncio.sleep(0)
    assert ticker.waits == []
    ready.set()
    await ticker.tick()
    assert len(seen) == 1
    await stop(task)


async def test_a_failing_round_is_counted_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics, ticker = SidecarMetrics(), Ticker()
    failing = [True, True, False, True]

    async def one_round(now: datetime) -> None:
        if failing.pop(0):
            raise RuntimeError("boom")

    task = start("test", one_round, metrics, ticker)
    with caplog.at_level(logging.DEBUG, logger="sidecar.test"):
        for _ in range(4):
            await ticker.tick()
    assert rounds(metrics) == {"ok": 1.0, "failed": 3.0, "skipped": 0.0}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    # The same failure twice in a row is logged once with its traceback; after a good round,
    # the next failure is new again.
    assert [r.getMessage() for r in errors] == ["test round failed", "test round failed"]
    assert all(r.exc_info is not None for r in errors)
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["test rounds succeed again (after 1 more failed the same way)"]
    await stop(task)


async def test_a_different_failure_is_logged_again_and_the_same_one_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics, ticker = SidecarMetrics(), Ticker()
    errors = [KeyError("a"), KeyError("a"), KeyError("b"), ValueError("b"), ValueError("b")]

    async def one_round(now: datetime) -> None:
        raise errors.pop(0)

    task = start("test", one_round, metrics, ticker)
    with caplog.at_level(logging.DEBUG, logger="sidecar.test"):
        for _ in range(5):
            await ticker.tick()
    logged = [r.exc_info[1] for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert [repr(exc) for exc in logged] == ["KeyError('a')", "KeyError('b')", "ValueError('b')"]
    assert rounds(metrics)["failed"] == 5.0
    await stop(task)


async def test_an_outage_is_logged_at_debug_every_round_never_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics, ticker = SidecarMetrics(), Ticker()

    async def one_round(now: datetime) -> None:
        raise ConnectionRefusedError("connection refused")

    task = start("test", one_round, metrics, ticker,
                 is_outage=lambda exc: isinstance(exc, OSError))  # fmt: skip
    with caplog.at_level(logging.DEBUG, logger="sidecar.test"):
        for _ in range(3):
            await ticker.tick()
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "test round skipped: database unreachable (connection refused)")
    ] * 3
    assert rounds(metrics) == {"ok": 0.0, "failed": 3.0, "skipped": 0.0}
    await stop(task)


async def test_a_round_still_running_when_the_next_is_due_is_skipped_not_stacked() -> None:
    metrics, ticker = SidecarMetrics(), Ticker()
    release = asyncio.Event()
    running = 0
    most = 0

    async def one_round(now: datetime) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await release.wait()
        finally:
            running -= 1

    task = start("test", one_round, metrics, ticker)
    for _ in range(3):  # the first round starts, the next two ticks find it still running
        await ticker.tick()
    assert rounds(metrics) == {"ok": 0.0, "failed": 0.0, "skipped": 2.0}
    release.set()
    await asyncio.sleep(0)
    await ticker.tick()  # the slow round has ended: this tick starts a new one
    assert rounds(metrics) == {"ok": 2.0, "failed": 0.0, "skipped": 2.0}
    assert most == 1
    await stop(task)


async def test_cancelling_the_loop_cancels_the_round_in_progress() -> None:
    metrics, ticker = SidecarMetrics(), Ticker()
    cancelled = asyncio.Event()

    async def one_round(now: datetime) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = start("test", one_round, metrics, ticker)
    await ticker.tick()
    await stop(task)
    assert cancelled.is_set()
    assert rounds(metrics) == {"ok": 0.0, "failed": 0.0, "skipped": 0.0}


async def test_the_per_job_counters_follow_ok_and_failed_rounds() -> None:
    metrics, ticker = SidecarMetrics(), Ticker()
    failing = [False, True]

    async def one_round(now: datetime) -> None:
        if failing.pop(0):
            raise RuntimeError("boom")

    task = start("alerts", one_round, metrics, ticker)
    for _ in range(2):
        await ticker.tick()
    for result in ("ok", "skipped"):
        value = metrics.registry.get_sample_value("sidecar_alert_rounds_total", {"result": result})
        assert value == 1.0
    await stop(task)


def scraped_rounds(admin_url: str) -> dict[tuple[str, str], float]:
    """``sidecar_job_rounds_total`` on a sidecar's ``/metrics``: (job, outcome) -> count."""
    text = httpx.get(f"{admin_url}/metrics", timeout=10).text
    return {
        (sample.labels["job"], sample.labels["outcome"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "sidecar_job_rounds_total"
    }


def test_a_running_sidecar_counts_each_jobs_rounds_on_metrics(
    upstream: RunningServer, tmp_path: Path
) -> None:
    settings = sidecar_settings(
        upstream.url, f"sqlite:///{tmp_path / 'sidecar.db'}", tmp_path / "spool",
        alerts={"interval_s": 0.1}, drift={"enabled": True, "interval_s": 0.2},
    )  # fmt: skip
    with running_sidecar(settings) as sidecar:

        def counted(alerts: float, drift: float) -> dict[tuple[str, str], float] | None:
            now = scraped_rounds(sidecar.admin_url)
            ok = now.get(("alerts", "ok"), 0.0) >= alerts and now.get(("drift", "ok"), 0.0) >= drift
            return now if ok else None

        first = wait_for(lambda: counted(1, 1), what="a first alert and drift round")
        more = (first[("alerts", "ok")] + 3, first[("drift", "ok")] + 2)
        later = wait_for(lambda: counted(*more), what="three more alert and two drift rounds")
    assert {job for job, _ in later} == {"alerts", "drift"}  # the judge is off: no series
    for job in ("alerts", "drift"):
        assert later[(job, "failed")] == 0.0
        assert (job, "skipped") in later
