"""How the spool is doing: the records it drops, and the fsync loop that must not die.

:class:`DropLog` counts the records :meth:`~sidecar.logqueue.spool.Spool.append`
dropped and why (``spool_full``: the ``spool.max_bytes`` bound; ``disk_full``:
the disk or a quota refused the write; ``io_error``: any other error from the
disk), logs them rate-limited (the first drop at once, then one line per
window while dropping goes on, and one when appending works again), and says
the spool is degraded while the last drop is younger than its window.

:func:`sync_periodically` is the ``spool.fsync: interval`` loop: a sync that
raises is logged and the loop goes on, and each sync that succeeded is
reported (the ``sidecar_log_spool_last_fsync_timestamp_seconds`` gauge).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal, TypeAlias

logger = logging.getLogger("sidecar.spool")

DropReason: TypeAlias = Literal["spool_full", "disk_full", "io_error"]
DROP_REASONS: tuple[DropReason, ...] = ("spool_full", "disk_full", "io_error")
DROPPING_WINDOW_S = 10.0  # /readyz says degraded this long after a drop; one log line per window

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def drop_reason(exc: OSError) -> DropReason:
    """``disk_full`` for ENOSPC and EDQUOT, ``io_error`` for any other error from the disk."""
    return "disk_full" if exc.errno in _DISK_FULL_ERRNOS else "io_error"


class DropLog:
    """Records dropped by one spool: how many, the last reason, and when (``clock``: monotonic)."""

    def __init__(
        self,
        directory: Path,
        clock: Callable[[], float] = time.monotonic,
        window_s: float = DROPPING_WINDOW_S,
    ) -> None:
        self.directory = directory
        self.window_s = window_s
        self.total = 0
        self.last_reason: DropReason | None = None
        self._clock = clock
        self._cause = ""
        self._last_drop_s = 0.0
        self._streak = 0  # drops since the last append that worked
        self._streak_open = False
        self._streak_logged = False
        self._unlogged = 0  # drops not mentioned in a log line yet
        self._logged_s: float | None = None

    def dropped(self, reason: DropReason, cause: str) -> None:
        now = self._clock()
        self.total += 1
        if not self._streak_open:
            self._streak_open, self._streak, self._streak_logged = True, 0, False
        self._streak += 1
        self._unlogged += 1
        self.last_reason, self._cause, self._last_drop_s = reason, cause, now
        if self._logged_s is not None and now - self._logged_s < self.window_s:
            return
        hint = "; is the database reachable?" if reason == "spool_full" else ""
        if self._streak_logged:
            logger.error(
                "spool %s: still dropping request records (%s: %s): %d since the last report%s",
                self.directory, reason, cause, self._unlogged, hint,
            )  # fmt: skip
        else:
            logger.error(
                "spool %s: dropping request records (%s: %s), counted in "
                'sidecar_log_rows_lost_total{reason="%s"}%s',
                self.directory, reason, cause, reason, hint,
            )  # fmt: skip
        self._logged_s, self._unlogged, self._streak_logged = now, 0, True

    def appended(self) -> None:
        """An append worked: a streak of drops is over (said once, if the streak was logged)."""
        if not self._streak_open:
            return
        self._streak_open = False
        if self._streak_logged:
            logger.warning(
                "spool %s: appending works again, after %d records were dropped",
                self.directory,
                self._streak,
            )

    def dropping(self) -> str | None:
        """What is being dropped and why, while the last drop is under ``window_s`` old."""
        age_s = self._clock() - self._last_drop_s
        if self.last_reason is None or age_s >= self.window_s:
            return None
        return (
            f"dropping records ({self.last_reason}: {self._cause}; "
            f"{self._streak} dropped, the last {age_s:.0f} s ago)"
        )


async def sync_periodically(
    sync: Callable[[], bool],
    interval_s: float,
    on_synced: Callable[[float], None],
    *,
    wall_clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run ``sync`` off the event loop every ``interval_s``, forever (cancel to stop).

    ``on_synced`` gets the wall-clock time of each sync that succeeded, and of
    the start. A sync that raises (out of descriptors, no thread to run it in)
    is logged once per failing streak, and retried next interval.
    """
    loop = asyncio.get_running_loop()
    on_synced(wall_clock())
    failing = False
    while True:
        await sleep(interval_s)
        try:
            synced = await loop.run_in_executor(None, sync)
        except Exception:
            if not failing:
                logger.exception("spool fsync failed; retrying every %g s", interval_s)
            failing = True
            continue
        if synced:
            on_synced(wall_clock())
            if failing:
                logger.warning("spool fsync works again")
        failing = not synced
