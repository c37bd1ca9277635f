"""The loop every background job runs: one round every ``interval_s``, until cancelled.

:func:`run_every` calls ``one_round(now)`` on a fixed cadence and counts each round in
``sidecar_job_rounds_total{job, outcome}``:

- ``ok``: the round returned;
- ``failed``: it raised. The loop goes on. A database outage (``is_outage(exc)``: the jobs
  pass the store's ``is_connectivity_error``) is logged at debug level every round, as the
  database is expected to come back and the writer already reports it; any other failure is
  logged with its traceback once, repeats of the same failure (type and message) at debug
  level, and the first good round after it says so;
- ``skipped``: the previous round was still running when this one was due. Rounds never stack:
  the slow one goes on and the next due tick after it ends starts the next round.

Cancelling the loop cancels the round in progress. The clock (``now``) and the wait between
rounds (``sleep``) are parameters, so tests drive the loop without real time passing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sidecar.metrics import JOB_OUTCOMES, SidecarMetrics

Round = Callable[[datetime], Awaitable[object]]
IsOutage = Callable[[BaseException], bool]


def _no_outage(exc: BaseException) -> bool:
    return False


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def run_every(
    name: str,
    interval_s: float,
    one_round: Round,
    *,
    metrics: SidecarMetrics,
    is_outage: IsOutage = _no_outage,
    ready: asyncio.Event | None = None,
    clock: Callable[[], datetime] = _utc_now,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> None:
    """Run ``one_round(clock())`` every ``interval_s`` (the first one interval after ``ready``)
    until cancelled; never returns otherwise. Logs to ``sidecar.<name>``."""
    if ready is not None:
        await ready.wait()
    for outcome in JOB_OUTCOMES:
        metrics.job_rounds.labels(name, outcome)  # present at 0: the first failure shows
    failures = FailureLog(name, logging.getLogger(f"sidecar.{name}"), is_outage)

    async def guarded(now: datetime) -> None:
        try:
            await one_round(now)
        except Exception as exc:
            metrics.count_round(name, "failed")
            failures.failed(exc)
            return
        metrics.count_round(name, "ok")
        failures.succeeded()

    running: asyncio.Task[None] | None = None
    try:
        while True:
            await sleep(interval_s)
            if running is not None and not running.done():
                metrics.count_round(name, "skipped")
                continue
            running = asyncio.create_task(guarded(clock()), name=f"{name}-round")
    finally:
        if running is not None and not running.done():
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


class FailureLog:
    """What a job loop logs about failed rounds: each distinct failure once, outages quietly."""

    __slots__ = ("_is_outage", "_last", "_logger", "_name", "_repeats")

    def __init__(self, name: str, logger: logging.Logger, is_outage: IsOutage = _no_outage) -> None:
        self._name = name
        self._logger = logger
        self._is_outage = is_outage
        self._last: tuple[str, str] | None = None  # the failure logged with its traceback
        self._repeats = 0

    def failed(self, exc: Exception) -> None:
        if self._is_outage(exc):
            self._logger.debug("%s round skipped: database unreachable (%s)", self._name, exc)
            return
        key = (type(exc).__qualname__, str(exc))
        if key == self._last:
            self._repeats += 1
            self._logger.debug("%s round failed again: %s", self._name, exc)
            return
        self._last, self._repeats = key, 0
        self._logger.error("%s round failed", self._name, exc_info=exc)

    def succeeded(self) -> None:
        if self._last is not None:
            self._logger.info(
                "%s rounds succeed again (after %d more failed the same way)",
                self._name,
                self._repeats,
            )
        self._last, self._repeats = None, 0
