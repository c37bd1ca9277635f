"""Row building in worker processes, so the proxy's event loop only appends and inserts.

The log writer runs beside the proxy on one event loop. Building a row costs a few hundred
microseconds of pure Python (reassembly, redaction, the schema check, drift features);
``writer.workers`` processes (other cores) do it instead, each a share of the batch, and send
the rows back msgpack-encoded.

Every record's build has a deadline: a worker tells the writer (through shared memory) which
record it is on and since when, so one that runs past ``writer.record_deadline_s`` on a record,
or dies on one, is killed and replaced, and the batch is built again by a fresh worker. A
record that fails a second time is quarantined: built here without the schema check and the
drift features (:func:`build_quarantined`), so the same record is never replayed into the
same failure. With ``writer.workers: 0`` rows are built in-process; no per-record deadline
can be enforced there, so the work itself is bounded (linear-time patterns, bounded sizes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from sidecar.drift.embeddings import load_embedder
from sidecar.logqueue.rowbuild import (
    CHECK_TIMEOUT,
    WORKER_DIED,
    BuildOptions,
    BuiltBatch,
    build_batch,
    build_quarantined,
)
from sidecar.settings import ComplianceSettings
from sidecar.validators.compliance import Compliance

logger = logging.getLogger("sidecar.writer")

PARENT_POLL_S = 1.0
WORKER_START_S = 60.0  # a fresh worker imports the sidecar first: its first record may wait
JOB_START_S = 30.0  # receiving and decoding a batch, on a busy machine, before its first record
RETRIES_PER_BATCH = 2  # past these, a record that fails is quarantined at its first failure
_IDLE = -1.0
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(BuiltBatch).decode
_spawn = multiprocessing.get_context("spawn")

BuildBatch = Callable[..., BuiltBatch]  # build_batch's signature; tests inject faults here


def _worker_main(
    settings: ComplianceSettings,
    parent: int,
    jobs: Connection,
    progress: Any,
    build: BuildBatch,
) -> None:
    # The parent's pid comes from the parent: it may be gone already by the time this runs.
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="parent-watch").start()
    compliance = Compliance(settings)  # compiled once per worker

    def started(index: int) -> None:
        progress[1] = time.monotonic()
        progress[0] = float(index)

    while True:
        try:
            records, catalog, options, skip = jobs.recv()
        except (EOFError, OSError):
            return
        batch = build(records, catalog, options, compliance, skip=skip, on_record=started)
        progress[0] = _IDLE
        try:
            message = b"R" + _encode(batch)
        except (TypeError, ValueError, OverflowError) as exc:  # a row msgpack cannot carry
            message = b"E" + str(exc).encode()
        jobs.send_bytes(message)


def _exit_with(parent: int) -> None:
    """A sidecar killed with SIGKILL cannot stop its workers: each leaves on its own."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


class _Worker:
    """One worker process, its job pipe and its progress: (record index or -1, since when)."""

    def __init__(self, settings: ComplianceSettings, build: BuildBatch, generation: int) -> None:
        self.generation = generation  # RowBuilder.reload() retires older ones
        self.killed = False
        self.jobs, child = _spawn.Pipe()
        self.progress = _spawn.Array("d", [_IDLE, 0.0], lock=False)
        self.process = _spawn.Process(
            target=_worker_main,
            args=(settings, os.getpid(), child, self.progress, build),
            name="sidecar-row-worker",
            daemon=True,  # never outlives the sidecar's interpreter
        )
        self.process.start()
        child.close()
        self.fresh = True  # has not answered a job yet

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def kill(self) -> None:
        self.killed = True
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()
        with contextlib.suppress(OSError, ValueError, AssertionError):
            self.process.join(1.0)
        with contextlib.suppress(OSError):
            self.jobs.close()


@dataclass(frozen=True, slots=True)
class _Failed:
    index: int | None  # the record it was building; None: between records
    reason: str  # CHECK_TIMEOUT or WORKER_DIED


class RowBuilder:
    """``await build(records, catalog)`` -> the batch's rows (and what could not be read)."""

    def __init__(
        self,
        compliance: ComplianceSettings,
        options: BuildOptions,
        workers: int,
        *,
        record_deadline_s: float = 2.0,
        build: BuildBatch = build_batch,
    ) -> None:
        self.settings = compliance
        self.options = options
        self.workers = workers
        self.record_deadline_s = record_deadline_s
        self.compliance = Compliance(compliance)  # raises ConfigError on a bad schema or rule
        if options.drift_features and options.embedding_fields:
            load_embedder(options.embedding_model)  # ConfigError now if the extra is missing
        self._build = build
        self._slots: list[_Worker | None] = [None] * workers
        self._generation = 0
        self.busy = 0  # chunks sent to a worker and not answered yet

    def pids(self) -> list[int]:
        """The live workers' process ids."""
        return [w.pid for w in self._slots if w is not None and w.pid and w.process.is_alive()]

    def reload(self) -> list[str]:
        """Recompile the schemas (raises ConfigError and keeps the old ones on any problem,
        a missing directory included); workers restart with the new ones. Returns the names."""
        fresh = Compliance(self.settings, reload=True)
        self.compliance = fresh
        self._generation += 1  # each worker is replaced when it is next idle
        return fresh.registry.names()

    async def __call__(self, records: list[bytes], catalog: Mapping[str, str | None]) -> BuiltBatch:
        if self.workers == 0:
            return self._in_process(records, catalog, {})
        size = -(-len(records) // self.workers)
        chunks = [records[start : start + size] for start in range(0, len(records), size)]
        parts = await asyncio.gather(
            *(self._build_chunk(slot, chunk, catalog) for slot, chunk in enumerate(chunks))
        )
        batch = BuiltBatch()
        for part in parts:
            batch.merge(part)
        return batch

    async def _build_chunk(
        self, slot: int, records: list[bytes], catalog: Mapping[str, str | None]
    ) -> BuiltBatch:
        quarantined: dict[int, str] = {}
        failures: dict[int, int] = {}
        replaced: list[str] = []
        retries = 0
        while True:
            worker = self._worker(slot, replaced)
            outcome = await self._run(worker, records, catalog, quarantined)
            if isinstance(outcome, BuiltBatch):
                break
            self._slots[slot] = None
            replaced.append("deadline" if outcome.reason == CHECK_TIMEOUT else "died")
            if outcome.index is None:
                logger.warning(
                    "row worker %s (pid %s) between records; building %d records in-process",
                    "stuck" if outcome.reason == CHECK_TIMEOUT else "died",
                    worker.pid, len(records),
                )  # fmt: skip
                outcome = self._in_process(records, catalog, quarantined)
                break
            index = outcome.index
            failures[index] = failures.get(index, 0) + 1
            what = (
                f"ran past writer.record_deadline_s ({self.record_deadline_s:g} s)"
                if outcome.reason == CHECK_TIMEOUT
                else "killed its worker"
            )
            if failures[index] > 1 or retries >= RETRIES_PER_BATCH:
                quarantined[index] = outcome.reason
                logger.error(
                    "a log record's build %s again: quarantined, logged without its schema "
                    "check and drift features (counted in sidecar_log_rows_degraded_total)", what,
                )  # fmt: skip
            else:
                retries += 1
                logger.warning(
                    "a log record's build %s (worker pid %s replaced); retrying once",
                    what, worker.pid,
                )  # fmt: skip
        outcome.workers_replaced.extend(replaced)
        return outcome

    def _worker(self, slot: int, replaced: list[str]) -> _Worker:
        worker = self._slots[slot]
        if worker is not None and worker.generation != self._generation:
            worker.kill()  # compiled before the last reload
            worker = None
        elif worker is not None and not worker.killed and not worker.process.is_alive():
            logger.warning("row worker pid %s died while idle; starting another", worker.pid)
            worker.kill()
            replaced.append("died")
            worker = None
        if worker is None or worker.killed:
            worker = self._slots[slot] = _Worker(self.settings, self._build, self._generation)
        return worker

    async def _run(
        self,
        worker: _Worker,
        records: list[bytes],
        catalog: Mapping[str, str | None],
        quarantined: dict[int, str],
    ) -> BuiltBatch | _Failed:
        """Build ``records`` in ``worker``; a failure names the record it was on."""
        loop = asyncio.get_running_loop()
        job = (records, dict(catalog), self.options, frozenset(quarantined))
        self.busy += 1
        try:
            try:
                await loop.run_in_executor(None, worker.jobs.send, job)
            except (OSError, EOFError):
                return self._died(worker)
            sent_at = time.monotonic()
            while not worker.jobs.poll():
                index = worker.progress[0]
                if index == _IDLE:
                    limit_at = sent_at + (WORKER_START_S if worker.fresh else JOB_START_S)
                else:
                    limit_at = worker.progress[1] + self.record_deadline_s
                now = time.monotonic()
                if now >= limit_at:
                    worker.kill()
                    return _Failed(None if index == _IDLE else int(index), CHECK_TIMEOUT)
                await _readable(worker.jobs, min(limit_at - now, 0.5))
            try:
                message = await loop.run_in_executor(None, worker.jobs.recv_bytes)
            except (OSError, EOFError):
                return self._died(worker)
        except BaseException:  # cancelled (shutdown, drain deadline): it may be stuck
            worker.kill()
            raise
        finally:
            self.busy -= 1
        worker.fresh = False
        if message[:1] == b"E":
            logger.warning("row worker could not send its rows (%s); built in-process",
                           message[1:].decode(errors="replace"))  # fmt: skip
            return self._in_process(records, catalog, quarantined)
        built = _decode(message[1:])
        for index, reason in quarantined.items():
            built.merge(self._quarantined(records[index], catalog, reason))
        return built

    def _died(self, worker: _Worker) -> _Failed:
        index = worker.progress[0]
        worker.kill()
        return _Failed(None if index == _IDLE else int(index), WORKER_DIED)

    def _in_process(
        self,
        records: list[bytes],
        catalog: Mapping[str, str | None],
        quarantined: dict[int, str],
    ) -> BuiltBatch:
        batch = build_batch(records, catalog, self.options, self.compliance, skip=quarantined)
        for index, reason in quarantined.items():
            batch.merge(self._quarantined(records[index], catalog, reason))
        return batch

    def _quarantined(
        self, record: bytes, catalog: Mapping[str, str | None], reason: str
    ) -> BuiltBatch:
        return build_quarantined(
            record, catalog, self.options, self.compliance, reason, self.record_deadline_s
        )

    def close(self) -> None:
        for slot, worker in enumerate(self._slots):
            if worker is not None:
                worker.kill()
                self._slots[slot] = None


async def _readable(connection: Connection, timeout_s: float) -> None:
    """Wait until ``connection`` has data (or EOF), at most ``timeout_s``.

    uvloop's ``add_reader`` makes the descriptor non-blocking and leaves it so; the same
    socket then carries the next job with a blocking ``send`` from a thread, which would fail
    with EAGAIN as soon as a batch outgrows the socket buffer: the blocking mode is restored.
    """
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    fd = connection.fileno()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready, timeout_s)
    finally:
        loop.remove_reader(fd)
        os.set_blocking(fd, True)
