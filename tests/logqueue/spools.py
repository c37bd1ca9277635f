"""Spool helpers shared by the spool tests: payloads, draining, a simulated crash."""

from __future__ import annotations

import os
from pathlib import Path

from sidecar.logqueue.framing import HEADER_SIZE
from sidecar.logqueue.spool import Spool


def payloads(count: int, size: int = 40, start: int = 0) -> list[bytes]:
    return [
        f"record {index:06d} ".encode().ljust(size, b".") for index in range(start, start + count)
    ]


def framed(records: list[bytes]) -> int:
    return sum(HEADER_SIZE + len(record) for record in records)


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def read_all(spool: Spool, batch: int = 1000) -> list[bytes]:
    records: list[bytes] = []
    while chunk := spool.read_batch(batch).records:
        records.extend(chunk)
    return records


def drain(spool: Spool, batch: int = 7) -> list[bytes]:
    records: list[bytes] = []
    while (result := spool.read_batch(batch)).records:
        records.extend(result.records)
        spool.commit(result.end)
    return records


def crash(spool: Spool) -> None:
    """Drop the spool as a killed process would: close its files, write nothing more."""
    spool._close_reader()
    for fd in [spool._fd, *spool._unsynced.values(), spool._dir_fd, spool._lock_fd]:
        os.close(fd)
    spool._fd = spool._dir_fd = spool._lock_fd = -1
    spool._unsynced = {}
