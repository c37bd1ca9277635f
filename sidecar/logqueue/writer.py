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
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.drift.features import extract_features
from sidecar.errors import StoreUnavailable
from sidecar.judge.sampling import Sampler
from sidecar.logqueue.rows import IdentifyModel, prepare_row, with_verdict
from sidecar.logqueue.spool import Spool
from sidecar.metrics import SidecarMetrics
from sidecar.records import Exchange, LoggedRequest, SchemaVerdict
from sidecar.settings import Settings
from sidecar.store.writes import insert_requests
from sidecar.validators.selection import Exchanged

logger = logging.getLogger("sidecar.writer")

RowHook = Callable[[Sequence[LoggedRequest]], None]
CheckSchemas = Callable[[list[Exchanged]], Awaitable[list[SchemaVerdict | None]]]
ROWS_PER_YIELD = 25


class LogPipeline:
    """The request path's side: encode an Exchange and append it to the spool (the sink)."""

    def __init__(self, spool: Spool, metrics: SidecarMetrics) -> None:
        self.spool = spool
        self.metrics = metrics
        self.wake = asyncio.Event()
        self._encode = msgspec.msgpack.Encoder().encode
        self._last_full_warning = 0.0

    def submit(self, exchange: Exchange) -> None:
        if self.spool.append(self._encode(exchange)):
            self.wake.set()
            return
        self.metrics.rows_lost.labels("spool_full").inc()
        now = time.monotonic()
        if now - self._last_full_warning > 10.0:
            self._last_full_warning = now
            logger.error(
                "log spool is full (%d bytes pending): dropping request records "
                "(counted in sidecar_log_rows_lost_total). Is the database reachable?",
                self.spool.pending_bytes,
            )


class LogWriter:
    """Drain the spool into the store in batches."""

    def __init__(
        self,
        spool: Spool,
        engine: AsyncEngine,
        identify: IdentifyModel,
        settings: Settings,
        metrics: SidecarMetrics,
        wake: asyncio.Event,
        on_rows: RowHook | None = None,
        check_schemas: CheckSchemas | None = None,
        sampler: Sampler | None = None,
    ) -> None:
        self.spool = spool
        self.engine = engine
        self.identify = identify
        self.settings = settings
        self.metrics = metrics
        self.wake = wake
        self.on_rows = on_rows
        self.check_schemas = check_schemas
        self.sampler = sampler
        self._decode = msgspec.msgpack.Decoder(Exchange).decode
        self.healthy = True
        self.last_error: str | None = None
        self._reported_corrupt = 0

    async def run(self) -> None:
        """Write forever; cancel the task to stop (the current batch stays in the spool)."""
        idle_s = self.settings.writer.idle_poll_s
        linger_s = self.settings.writer.linger_s
        batch_size = self.settings.writer.batch_size
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
        batch = self.spool.read_batch(self.settings.writer.batch_size)
        self._count_corrupt()
        self.metrics.spool_bytes.set(self.spool.pending_bytes)
        if not batch.records:
            return 0
        rows = await self._rows(batch.records)
        await self._insert_with_retry(rows)
        # The checkpoint write fsyncs: keep it off the event loop the proxy runs on.
        await asyncio.get_running_loop().run_in_executor(None, self.spool.commit, batch.end)
        self.metrics.spool_bytes.set(self.spool.pending_bytes)
        self.metrics.rows_written.inc(len(rows))
        if rows:
            oldest = min(row.started_at for row in rows)
            self.metrics.writer_lag.set(max(0.0, time.time() - oldest.timestamp()))
        self._observe(rows)
        if self.on_rows is not None:
            try:
                self.on_rows(rows)
            except Exception:
                logger.exception("row hook failed")
        return len(batch.records)

    async def _rows(self, records: list[bytes]) -> list[LoggedRequest]:
        """Build the rows, yielding to the event loop now and then so the proxy stays responsive."""
        policy = self.settings.request_log.bodies
        max_body = self.settings.request_log.max_body_bytes
        rows: list[LoggedRequest] = []
        targets: list[Exchanged] = []
        checked: list[int] = []
        for count, record in enumerate(records, 1):
            if count % ROWS_PER_YIELD == 0:
                await asyncio.sleep(0)
            try:
                exchange = self._decode(record)
                row, target = prepare_row(
                    exchange, self.identify, body_policy=policy, max_body_bytes=max_body
                )
            except Exception:
                logger.exception("dropping an unreadable log record (%d bytes)", len(record))
                self.metrics.rows_lost.labels("corrupt").inc()
                continue
            if target is not None:
                checked.append(len(rows))
                targets.append(target)
            rows.append(row)
        if self.check_schemas is not None and targets:
            try:
                verdicts = await self.check_schemas(targets)
            except Exception:  # a checker bug must not stop the log
                logger.exception("schema checks failed for a batch of %d rows", len(targets))
            else:
                for index, verdict in zip(checked, verdicts, strict=True):
                    rows[index] = with_verdict(rows[index], verdict)
        if self.sampler is not None or self.settings.drift.enabled:
            self._annotate(rows)
        return rows

    def _annotate(self, rows: list[LoggedRequest]) -> None:
        """Drift features, and the judge's sampling decision (after the schema verdict, which
        both use). Features come from the bodies as stored: nothing with policy ``none``."""
        sampler, drift = self.sampler, self.settings.drift.enabled
        now_s = time.time()
        for index, row in enumerate(rows):
            changes: dict[str, Any] = {}
            if drift:
                changes["features"] = extract_features(row).as_json()
            if sampler is not None and (reason := sampler.decide(row, now_s)) is not None:
                changes["judge_sample"] = reason
                self.metrics.judge_samples.labels(reason).inc()
            rows[index] = dataclasses.replace(row, **changes)

    async def _insert_with_retry(self, rows: list[LoggedRequest]) -> None:
        delay = self.settings.writer.retry_initial_s
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
                delay = min(delay * 2, self.settings.writer.retry_max_s)
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
