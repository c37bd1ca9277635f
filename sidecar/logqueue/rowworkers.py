"""Row building in a worker process, so the proxy's event loop only appends and inserts.

The log writer runs beside the proxy on one event loop. Building a row costs a few hundred
microseconds of pure Python (reassembly, redaction, jsonschema at ~0.2 ms per 1 kB document,
drift features at ~40 us); ``writer.workers`` processes (another core) do it instead, batch by
batch, and send the rows back msgpack-encoded. With ``writer.workers: 0``, or when a worker
dies, the batch is built in-process.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import msgspec

from sidecar.logqueue.rowbuild import BuildOptions, BuiltBatch, build_batch
from sidecar.settings import ComplianceSettings
from sidecar.validators.compliance import Compliance

logger = logging.getLogger("sidecar.writer")

PARENT_POLL_S = 1.0
_compliance: Compliance | None = None
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(BuiltBatch).decode


def _start_worker(settings: ComplianceSettings, parent: int) -> None:
    # The parent's pid comes from the parent: it may be gone already by the time this runs.
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="parent-watch").start()
    global _compliance  # one Compliance per worker process, compiled once
    _compliance = Compliance(settings)


def _exit_with(parent: int) -> None:
    """A sidecar killed with SIGKILL cannot stop its pool: the worker leaves on its own."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def _build_in_worker(
    records: list[bytes], catalog: dict[str, str | None], options: BuildOptions
) -> bytes:
    return _encode(build_batch(records, catalog, options, _compliance))


class RowBuilder:
    """``await build(records, catalog)`` -> the batch's rows (and what could not be read)."""

    def __init__(self, compliance: ComplianceSettings, options: BuildOptions, workers: int) -> None:
        self.settings = compliance
        self.options = options
        self.workers = workers
        self.compliance = Compliance(compliance)  # raises ConfigError on a bad schema or rule
        self._pool: ProcessPoolExecutor | None = None

    async def __call__(self, records: list[bytes], catalog: Mapping[str, str | None]) -> BuiltBatch:
        if self.workers == 0:
            return self._in_process(records, catalog)
        loop = asyncio.get_running_loop()
        try:
            encoded = await loop.run_in_executor(
                self._ensure_pool(), _build_in_worker, records, dict(catalog), self.options
            )
        except (BrokenProcessPool, OSError, TypeError, ValueError) as exc:
            # A dead worker, or a row msgpack cannot carry: this batch is built here instead.
            logger.warning("row worker failed (%s); building this batch in-process", exc)
            if isinstance(exc, BrokenProcessPool | OSError):
                self.close()
            return self._in_process(records, catalog)
        return _decode(encoded)

    def _in_process(self, records: list[bytes], catalog: Mapping[str, str | None]) -> BuiltBatch:
        return build_batch(records, catalog, self.options, self.compliance)

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self.settings, os.getpid()),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
