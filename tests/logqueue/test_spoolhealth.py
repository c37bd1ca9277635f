"""The fsync loop cannot die silently; drop reasons follow the OS error."""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable

import pytest

from sidecar.logqueue.spoolhealth import drop_reason, sync_periodically


class StopLoop(Exception):
    """Raised by the fake sleep to end the loop after a number of rounds."""


def rounds(count: int) -> tuple[list[float], Callable[[float], Awaitable[None]]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        if len(slept) == count:
            raise StopLoop
        slept.append(seconds)

    return slept, sleep


async def test_a_sync_that_raises_is_logged_once_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    results: list[bool | Exception] = [
        RuntimeError("can't start new thread"), OSError(errno.EMFILE, "Too many open files"),
        True, False, True,
    ]  # fmt: skip
    clock = iter(float(second) for second in range(100, 200))
    synced_at: list[float] = []

    def sync() -> bool:
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    slept, sleep = rounds(5)
    with caplog.at_level(logging.WARNING, logger="sidecar.spool"), pytest.raises(StopLoop):
        await sync_periodically(
            sync,
            0.5,
            synced_at.append,
            wall_clock=lambda: next(clock),
            sleep=sleep,
        )
    assert results == []  # every round ran, through both failures
    assert slept == [0.5] * 5
    assert synced_at == [100.0, 101.0, 102.0]  # the start, then the two syncs that worked
    messages = [record.getMessage() for record in caplog.records]
    # (a sync that returns False has logged its fsync error itself)
    assert messages == [
        "spool fsync failed; retrying every 0.5 s",
        "spool fsync works again",
        "spool fsync works again",
    ]
    assert caplog.records[0].exc_info is not None  # with the traceback, once


@pytest.mark.parametrize(
    ("code", "reason"),
    [(errno.ENOSPC, "disk_full"), (errno.EDQUOT, "disk_full"), (errno.EIO, "io_error"),
     (errno.EROFS, "io_error"), (errno.EMFILE, "io_error")],
)  # fmt: skip
def test_disk_errors_are_counted_by_their_own_reason(code: int, reason: str) -> None:
    assert drop_reason(OSError(code, "x")) == reason
