"""The log writer: spool -> rows -> store, then advance the checkpoint.

Runs as one asyncio task beside the proxy. Every record is committed to the
store before the spool position moves past it, and inserts are idempotent on
the request id, so a crash at any point replays without duplicates. While the
store is down the same batch is retried with capped exponential backoff and
the proxy keeps appending to the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.errors import StoreUnavailable
from sidecar.judge.sampling import Sampler
from sidecar.logqueue.rowbuild import BuiltBatch
from sidecar.logqueue.spool import Spool
from sidecar.metrics import SidecarMetrics
from sidecar.records import Exchange, LoggedRequest
from sidecar.settings import WriterSettings
from sidecar.store.writes import insert_requests

logger = logging.getLogger("sidecar.writer")

BuildRows = Callable[[list[bytes]], Awaitable[BuiltBatch]]


class LogPipeline:
    """The request path's side: encode an Exchange and append it to the spool (the sink)."""

    def __init__(self, spool: Spool, metrics: SidecarMetrics) -> None:
        self.spool = spool
        self.metrics = metrics
        self.wake = asyncio.Event()
        self._encode = msgspec.msgpack.Encoder().encode

    def submit(self, exchange: Exchange) -> None:
        if self.spool.append(self._encode(exchange)):
            self.wake.set()
            return
        # Dropped: the spool logged why (rate-limited); count it by that reason.
        self.metrics.rows_lost.labels(self.spool.last_drop_reason or "spool_full").inc()


class LogWriter:
    """Drain the spool into the store in batches."""

    def __init__(
        self,
        spool: Spool,
        engine: AsyncEngine,
        settings: WriterSettings,
        metrics: SidecarMetrics,
        wake: asyncio.Event,
        build_rows: BuildRows,
        *,
        on_unknown_models: Callable[[list[str]], None] | None = None,
        sampler: Sampler | None = None,
    ) -> None:
        self.spool = spool
        self.engine = engine
        self.settings = settings
        self.metrics = metrics
        self.wake = wake
        self.build_rows = build_rows
        self.on_unknown_models = on_unknown_models
        self.sampler = sampler
        self.healthy = True
        self.last_error: str | None = None
        self._reported_corrupt = 0

    async def run(self) -> None:
        """Write forever; cancel the task to stop (the current batch stays in the spool)."""
        idle_s = self.settings.idle_poll_s
        linger_s = self.settings.linger_s
        batch_size = self.settings.batch_size
        while True:
            written = await self.write_once()
            if written == 0:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), idle_s)
            elif written < batch_size:
                await asyncio.sleep(linger_s)  # let the next batch fill up

    async def drain(self, deadline_s: float) -> bool:
        """Write until the spool is empty or the deadline passes; True when empty."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while self.spool.has_pending() and loop.time() < end:
            try:
                async with asyncio.timeout(max(0.0, end - loop.time())):
                    if await self.write_once() == 0 and self.spool.has_pending():
                        await asyncio.sleep(0.05)
            except TimeoutError:
                break
        return not self.spool.has_pending()

    async def write_once(self) -> int:
        """Read one batch, insert it (retrying while the store is down), commit. Returns its size."""
        batch = self.spool.read_batch(self.settings.batch_size)
        self._count_corrupt()
        self.metrics.spool_bytes.set(self.spool.pending_bytes)
        if not batch.records:
            return 0
        try:
            rows = await self._rows(batch.records)
        except Exception:  # a row-building bug must not stop the log: keep the batch, retry
            logger.exception("building rows failed for %d records; retrying", len(batch.records))
            self.spool.rewind()
            await asyncio.sleep(self.settings.retry_max_s)
            return 0
        await self._insert_with_retry(rows)
        # The checkpoint write fsyncs: keep it off the event loop the proxy runs on.
        await asyncio.get_running_loop().run_in_executor(None, self.spool.commit, batch.end)
        self.metrics.spool_bytes.set(self.spool.pending_bytes)
        self.metrics.rows_written.inc(len(rows))
        if rows:
            oldest = min(row.started_at for row in rows)
            self.metrics.writer_lag.set(max(0.0, time.time() - oldest.timestamp()))
        self._observe(rows)
        return len(batch.records)

    async def _rows(self, records: list[bytes]) -> list[LoggedRequest]:
        """The batch's rows, built off the event loop (see rowworkers), then sampled here."""
        batch = await self.build_rows(records)
        for problem in batch.unreadable:
            logger.error("dropping an unreadable log record (%s)", problem)
            self.metrics.rows_lost.labels("corrupt").inc()
        for why in batch.degraded:
            self.metrics.rows_degraded.labels(why).inc()
        for why in batch.workers_replaced:
            self.metrics.row_workers_replaced.labels(why).inc()
        if batch.unknown_models and self.on_unknown_models is not None:
            self.on_unknown_models(batch.unknown_models)
        rows = batch.rows
        if self.sampler is not None:
            now_s = time.time()
            for index, row in enumerate(rows):
                if (reason := self.sampler.decide(row, now_s)) is not None:
                    rows[index] = dataclasses.replace(row, judge_sample=reason)
                    self.metrics.judge_samples.labels(reason).inc()
        return rows

    async def _insert_with_retry(self, rows: list[LoggedRequest]) -> None:
        delay = self.settings.retry_initial_s
        while True:
            try:
                await self._insert(rows)
            except StoreUnavailable as exc:
                self.metrics.store_errors.labels("unavailable").inc()
                if self.healthy:
                    logger.warning(
                        "store unavailable, keeping %d rows in the spool and retrying: %s",
                        len(rows), exc,
                    )  # fmt: skip
                self.healthy = False
                self.last_error = str(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_s)
                continue
            if not self.healthy:
                logger.warning("store reachable again; writing resumed")
            self.healthy = True
            self.last_error = None
            return

    async def _insert(self, rows: list[LoggedRequest]) -> None:
        try:
            await insert_requests(self.engine, rows)
        except StoreUnavailable:
            raise
        except Exception as exc:
            # A row the database refuses must not block the ones after it.
            self.metrics.store_errors.labels("rejected").inc()
            logger.warning("batch insert failed (%s); inserting row by row", exc)
            for row in rows:
                await self._insert_one(row)

    async def _insert_one(self, row: LoggedRequest) -> None:
        try:
            await insert_requests(self.engine, [row])
            return
        except StoreUnavailable:
            raise
        except Exception as exc:
            logger.error(
                "request %s refused by the store (%s); retrying without bodies", row.id, exc
            )
        try:
            await insert_requests(self.engine, [_without_bodies(row)])
        except StoreUnavailable:
            raise
        except Exception:
            logger.exception("request %s could not be stored at all; it is lost", row.id)
            self.metrics.rows_lost.labels("rejected").inc()

    def _observe(self, rows: list[LoggedRequest]) -> None:
        metrics = self.metrics
        for row in rows:
            model = metrics.model_label(row.model)
            if row.prompt_tokens:
                metrics.tokens.labels(model, "prompt").inc(row.prompt_tokens)
            if row.completion_tokens:
                metrics.tokens.labels(model, "completion").inc(row.completion_tokens)
            if row.ttft_ms is not None:
                metrics.time_to_first_token.labels(model).observe(row.ttft_ms / 1000.0)
            if row.schema_verdict is not None:
                schema = metrics.schema_label(row.schema_name)
                metrics.schema_validations.labels(schema, model, row.schema_verdict).inc()

    def _count_corrupt(self) -> None:
        corrupt = self.spool.corrupt_records
        if corrupt > self._reported_corrupt:
            self.metrics.rows_lost.labels("corrupt").inc(corrupt - self._reported_corrupt)
            self._reported_corrupt = corrupt


def _without_bodies(row: LoggedRequest) -> LoggedRequest:
    note = "bodies not stored: the store refused them"
    return dataclasses.replace(row, request_body=None, response_body=None, error_message=note)
