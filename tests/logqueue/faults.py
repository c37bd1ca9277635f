"""Fault injection for row workers: a ``build_batch`` that stalls or dies on marked records.

Passed to ``RowBuilder(build=...)``; it runs inside the spawned worker process (imported by
name there), so the failure is the worker's own, as a real hang or crash would be.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Collection, Mapping

from sidecar.logqueue.rowbuild import BuildOptions, BuiltBatch, build_batch
from sidecar.validators.compliance import Compliance

STALL = b"STALL-THIS-WORKER"  # in a record: its build never finishes
DIE = b"KILL-THIS-WORKER"  # in a record: its build kills the worker process


def build_with_faults(
    records: list[bytes],
    catalog: Mapping[str, str | None],
    options: BuildOptions,
    compliance: Compliance | None,
    *,
    skip: Collection[int] = (),
    on_record: Callable[[int], None] | None = None,
) -> BuiltBatch:
    def started(index: int) -> None:
        if on_record is not None:
            on_record(index)
        if STALL in records[index]:
            while True:
                time.sleep(3600)
        if DIE in records[index]:
            os.kill(os.getpid(), signal.SIGKILL)

    return build_batch(records, catalog, options, compliance, skip=skip, on_record=started)
