"""Wiring: build every stage from one Settings object and run them together.

:class:`Sidecar` owns the long-lived pieces (upstream client, spool, store
engine, writer and catalog tasks) and exposes the two ASGI apps: ``proxy_app``
for the proxy port and ``admin_app`` for the admin port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.alerts.runner import run_alerts
from sidecar.drift.job import run_drift_loop
from sidecar.errors import ConfigError
from sidecar.feedback.api import create_feedback_app
from sidecar.judge.client import JudgeClient
from sidecar.judge.job import JudgeJob, build_sampler
from sidecar.judge.runner import run_judge
from sidecar.logqueue.rowbuild import BuildOptions, BuiltBatch
from sidecar.logqueue.rowworkers import RowBuilder
from sidecar.logqueue.spool import Spool
from sidecar.logqueue.spoolhealth import sync_periodically
from sidecar.logqueue.writer import LogPipeline, LogWriter
from sidecar.metrics import SidecarMetrics
from sidecar.proxy.app import ProxyApp
from sidecar.proxy.catalog import ModelCatalog
from sidecar.proxy.upstream import UpstreamClient, redact_url
from sidecar.server.admin import Readiness, create_admin_app
from sidecar.server.preflight import preflight
from sidecar.settings import Settings
from sidecar.store.engine import create_engine
from sidecar.store.errors import is_connectivity_error
from sidecar.store.migrate import upgrade_async

logger = logging.getLogger("sidecar")

FIRST_CATALOG_WAIT_S = 3.0
ADAPTER_REFRESH_WAIT_S = 2.0


class Sidecar:
    """All stages of one sidecar process."""

    def __init__(self, settings: Settings, *, registry: CollectorRegistry | None = None) -> None:
        checked = preflight(settings)  # the checks of `sidecar check-config`: a problem stops it
        for warning in checked.warnings:
            logger.warning("%s", warning)
        self.settings = settings
        self.metrics = SidecarMetrics(registry, max_label_values=settings.metrics.max_label_values)
        self.upstream = UpstreamClient(settings.upstream)
        self.metrics.upstream_connections_in_use.set_function(lambda: self.upstream.in_use)
        self.catalog = ModelCatalog()
        self.catalog_wake = asyncio.Event()
        self.row_builder = self._row_builder()  # a bad schema stops the start
        self.metrics.schema_label.serve(self.row_builder.compliance.registry.names())
        spool = settings.spool
        self.spool = Spool(
            spool.dir,
            max_bytes=spool.max_bytes,
            segment_bytes=spool.segment_bytes,
            fsync=spool.fsync,
        )
        self.pipeline = LogPipeline(self.spool, self.metrics)
        feedback_app = create_feedback_app(
            lambda: self.engine, self.metrics, self.spool.has_pending,
            admin_token=settings.admin.token,
        )  # fmt: skip
        self.proxy_app = ProxyApp(
            settings,
            self.upstream,
            self.pipeline,
            self.metrics,
            sidecar_app=feedback_app,
            after_adapter_change=self._refresh_catalog,
        )
        self.admin_app = create_admin_app(
            self.metrics,
            self.readiness,
            token=settings.admin.token,
            engine=lambda: self.engine,
            report_timeout_s=settings.database.statement_timeout_s,
            cost=settings.cost,
        )
        self.engine: AsyncEngine | None = None
        self.writer: LogWriter | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.schema_ready = asyncio.Event()
        self.alert_rules = checked.alert_rules
        self.rubrics = checked.rubrics
        self.sampler = (
            build_sampler(settings.judge, self.rubrics, random.Random())
            if self.rubrics is not None
            else None
        )

    async def start(self) -> None:
        settings = self.settings
        self.spool.open()  # first: a second sidecar on this spool stops here (SpoolLocked)
        schema_ready = not settings.database.auto_migrate or await self._migrate()
        self.engine = create_engine(settings.database.url, pool_size=settings.database.pool_size)
        await self.upstream.start()
        # Know the adapters before the first row is written (bounded: the upstream may be down).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_CATALOG_WAIT_S):
                await self.catalog.refresh(self.upstream)
        self._catalog_checked(self.catalog.healthy)
        if not self.catalog.healthy:
            logger.warning(
                "upstream %s unreachable at start (%s): serving anyway, requests get 502 until "
                "it answers",
                redact_url(self.upstream.base_url),
                self.catalog.last_error or f"no answer within {FIRST_CATALOG_WAIT_S:g} s",
            )  # fmt: skip
        self.writer = LogWriter(
            self.spool,
            self.engine,
            settings.writer,
            self.metrics,
            self.pipeline.wake,
            self._build_rows,
            on_unknown_models=lambda _: self.catalog_wake.set(),  # maybe an adapter loaded since
            sampler=self.sampler,
        )
        self._tasks = [
            asyncio.create_task(self._write(schema_ready), name="log-writer"),
            *self._alert_tasks(),
            *self._judge_tasks(),
            *self._drift_tasks(),
            asyncio.create_task(
                self.catalog.run(
                    self.upstream,
                    settings.upstream.models_refresh_s,
                    self.catalog_wake,
                    on_health=self._catalog_checked,
                ),
                name="model-catalog",
            ),
        ]
        if settings.spool.fsync == "interval":
            self._tasks.append(asyncio.create_task(self._fsync_loop(), name="spool-fsync"))

    async def stop(self, drain_s: float = 10.0) -> None:
        """Stop background work, write what the spool holds (up to ``drain_s``), close."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        # A batch the cancelled writer had read but not committed is read again (inserts are idempotent).
        self.spool.rewind()
        if self.writer is not None and self.spool.has_pending():
            if not await self.writer.drain(drain_s):
                logger.warning(
                    "stopping with %d bytes still in the spool; they will be written at next start",
                    self.spool.pending_bytes,
                )
        self.spool.close()
        self.row_builder.close()
        await self.upstream.close()
        if self.engine is not None:
            await self.engine.dispose()

    async def _migrate(self) -> bool:
        """Upgrade the schema; False (and keep serving) when the database cannot be reached."""
        try:
            await upgrade_async(self.settings.database.url)
        except Exception as exc:
            if not is_connectivity_error(exc):
                raise
            logger.warning(
                "database unreachable at start (%s): serving anyway, requests are spooled; "
                "the schema is upgraded and the spool written once it answers", exc,
            )  # fmt: skip
            return False
        return True

    def _alert_tasks(self) -> list[asyncio.Task[Any]]:
        if not self.settings.alerts.enabled or self.engine is None:
            return []
        loop = run_alerts(
            self.engine, self.settings.alerts, self.alert_rules, self.metrics, self.schema_ready
        )
        return [asyncio.create_task(loop, name="alerts")]

    def _judge_tasks(self) -> list[asyncio.Task[Any]]:
        if self.rubrics is None or self.engine is None:
            return []
        job = JudgeJob(
            self.engine,
            self.settings.judge,
            self.metrics,
            JudgeClient(self.settings.judge),
            rubrics=self.rubrics,
            sampler=self.sampler,
        )
        return [asyncio.create_task(run_judge(job, self.schema_ready), name="judge")]

    def _drift_tasks(self) -> list[asyncio.Task[Any]]:
        if not self.settings.drift.enabled or self.engine is None:
            return []
        loop = run_drift_loop(self.engine, self.settings.drift, self.metrics, self.schema_ready)
        return [asyncio.create_task(loop, name="drift")]

    async def _write(self, schema_ready: bool) -> None:
        """Run the writer, after the schema upgrade when the database was away at start."""
        assert self.writer is not None
        delay = self.settings.writer.retry_initial_s
        while not schema_ready:
            self.writer.healthy = False
            self.writer.last_error = "database unreachable: schema not upgraded yet"
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.writer.retry_max_s)
            schema_ready = await self._migrate()
        self.schema_ready.set()
        await self.writer.run()

    def readiness(self) -> Readiness:
        writer_ok = self.writer is not None and self.writer.healthy
        checks = {
            "upstream": "ok" if self.catalog.healthy else "unreachable",
            "writer": "ok"
            if writer_ok
            else f"failing: {self.writer.last_error if self.writer else 'not started'}",
            "spool": self.spool.health(),  # ok, degraded: dropping records (...), nearly full
            "upstream_pool": "ok"
            if not self.upstream.saturated
            else f"saturated: all {self.upstream.in_use} connections in use, "
            f"{self.upstream.waiting} requests waiting (upstream.max_connections)",
        }
        self.metrics.upstream_up.set(1 if self.catalog.healthy else 0)
        return Readiness(all(value == "ok" for value in checks.values()), checks)

    def reload_schemas(self) -> bool:
        """Recompile the schema directory (SIGHUP); a broken file or a missing directory keeps
        the previous schemas."""
        try:
            names = self.row_builder.reload()
        except ConfigError as exc:
            logger.error("schemas not reloaded, keeping the previous ones: %s", exc)
            return False
        self.metrics.schema_label.serve(names)
        logger.info("schemas reloaded: %s", ", ".join(names) or "none")
        return True

    def _row_builder(self) -> RowBuilder:
        settings = self.settings
        embeddings = settings.drift.embeddings
        options = BuildOptions(
            settings.request_log.bodies,
            settings.request_log.max_body_bytes,
            settings.drift.enabled,
            embedding_model=embeddings.model,
            embedding_fields=tuple(embeddings.fields) if embeddings.enabled else (),
        )
        return RowBuilder(
            settings.compliance, options, settings.writer.workers,
            record_deadline_s=settings.writer.record_deadline_s,
        )  # fmt: skip

    async def _build_rows(self, records: list[bytes]) -> BuiltBatch:
        return await self.row_builder(records, self.catalog.known())

    async def _refresh_catalog(self) -> None:
        """An adapter was loaded or unloaded: learn it before the client hears back (bounded)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ADAPTER_REFRESH_WAIT_S):
                await self.catalog.refresh(self.upstream)
        self._catalog_checked(self.catalog.healthy)

    def _catalog_checked(self, up: bool) -> None:
        """After each model-list check: the upstream gauge, and the served names get their own
        metric labels before any name a client invents (``LabelLimiter.serve``)."""
        self.metrics.upstream_up.set(1 if up else 0)
        self.metrics.model_label.serve(self.catalog.known())

    async def _fsync_loop(self) -> None:
        """Sync the spool every interval; a failure is logged and retried, never fatal."""
        interval_s = self.settings.spool.fsync_interval_s
        await sync_periodically(self.spool.sync, interval_s, self.metrics.spool_last_fsync.set)
