"""Schema checks in a worker process.

jsonschema is pure Python: about 0.2 ms for a 1 kB document. The log writer runs on the proxy's
event loop, so it hands the checks of each batch to a process of their own (another core) and
keeps only the cheap "does a schema apply?" test for itself. With ``compliance.workers: 0`` the
checks run in the writer's process instead.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from sidecar.records import SchemaVerdict
from sidecar.settings import ComplianceSettings
from sidecar.validators.compliance import Compliance
from sidecar.validators.selection import Exchanged

logger = logging.getLogger("sidecar.compliance")

_worker: Compliance | None = None


def _start_worker(settings: ComplianceSettings) -> None:
    global _worker  # one Compliance per worker process, compiled once
    _worker = Compliance(settings)


def _check_batch(targets: list[Exchanged]) -> list[SchemaVerdict | None]:
    assert _worker is not None, "the worker was not initialised"
    return [_worker.check(target) for target in targets]


class SchemaChecks:
    """``await checks(targets)`` -> one verdict (or None) per target, in order."""

    def __init__(self, settings: ComplianceSettings) -> None:
        self.settings = settings
        self.compliance = Compliance(settings)  # raises ConfigError on a bad schema or rule
        self._pool: ProcessPoolExecutor | None = None

    async def __call__(self, targets: list[Exchanged]) -> list[SchemaVerdict | None]:
        verdicts: list[SchemaVerdict | None] = [None] * len(targets)
        if not self.compliance.enabled:
            return verdicts
        chosen = [index for index, target in enumerate(targets) if self.compliance.applies(target)]
        if not chosen:
            return verdicts
        batch = [targets[index] for index in chosen]
        for index, verdict in zip(chosen, await self._check(batch), strict=True):
            verdicts[index] = verdict
        return verdicts

    async def _check(self, batch: list[Exchanged]) -> list[SchemaVerdict | None]:
        if self.settings.workers == 0:
            return [self.compliance.check(target) for target in batch]
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._ensure_pool(), _check_batch, batch)
        except (BrokenProcessPool, OSError) as exc:
            logger.warning("schema worker failed (%s); checking this batch in-process", exc)
            self.close()
            return [self.compliance.check(target) for target in batch]

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.settings.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self.settings,),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
