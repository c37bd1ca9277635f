"""The alert loop a sidecar runs: every ``alerts.interval_s``, one evaluation round and one
delivery round. A round the database cannot serve is skipped and counted, never turned into a
false "resolved"."""

from __future__ import annotations

import asyncio
from datetime import datetime

import aiohttp
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.alerts.job import deliver_round, evaluate_round
from sidecar.alerts.readers import RuleDefinition
from sidecar.metrics import SidecarMetrics
from sidecar.notifiers.delivery import LogNotifier, Notifier, SlackNotifier, WebhookNotifier
from sidecar.scheduler import run_every
from sidecar.settings import AlertSettings
from sidecar.store.errors import is_connectivity_error
from sidecar.store.tables import alert_state_table


def build_notifiers(settings: AlertSettings) -> dict[str, Notifier]:
    notifiers: dict[str, Notifier] = {}
    if settings.slack_webhook_url:
        notifiers["slack"] = SlackNotifier("slack", settings.slack_webhook_url)
    for index, url in enumerate(settings.webhook_urls):
        name = f"webhook-{index}"
        notifiers[name] = WebhookNotifier(name, url)
    if settings.log:
        notifiers["log"] = LogNotifier()
    return notifiers


async def run_alerts(
    engine: AsyncEngine,
    settings: AlertSettings,
    rules: list[RuleDefinition],
    metrics: SidecarMetrics,
    ready: asyncio.Event,
) -> None:
    await ready.wait()  # the schema exists
    notifiers = build_notifiers(settings)
    async with aiohttp.ClientSession() as session:

        async def one_round(now: datetime) -> None:
            await evaluate_round(engine, rules, notifiers, now)
            await deliver_round(engine, notifiers, session, now)
            await _export_firing(engine, metrics, rules)

        await run_every("alerts", settings.interval_s, one_round, metrics=metrics,
                        is_outage=is_connectivity_error)  # fmt: skip


async def _export_firing(
    engine: AsyncEngine, metrics: SidecarMetrics, rules: list[RuleDefinition]
) -> None:
    table = alert_state_table
    query = (
        sa.select(table.c.rule, sa.func.count())
        .where(table.c.status == "firing")
        .group_by(table.c.rule)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    firing = {str(rule): int(count) for rule, count in rows}
    for definition in rules:
        metrics.alerts_firing.labels(definition.spec.name).set(firing.get(definition.spec.name, 0))
