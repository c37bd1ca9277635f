"""One alert round (read -> evaluate -> persist -> queue) and one delivery round (outbox -> send).

Evaluation runs once across replicas: the round happens inside a transaction holding a
Postgres advisory lock, and a replica that cannot take it skips the round. Delivery claims
outbox rows with ``FOR UPDATE SKIP LOCKED``, so two replicas never send the same notification.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.alerts.evaluate import evaluate
from sidecar.alerts.readers import READERS, RuleDefinition
from sidecar.notifiers.delivery import Notifier, too_old
from sidecar.notifiers.payloads import AlertNotice
from sidecar.records import Silence, Transition
from sidecar.store.alerts import (
    active_silences,
    claim_due,
    load_states,
    record_attempt,
    save_round,
)
from sidecar.store.locks import LockKey, transaction_lock

logger = logging.getLogger("sidecar.alerts")
MAX_AGE_S = 3600.0
_ROUND_LOCKS: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)  # a notification not delivered within an hour is recorded as failed


def describe(definition: RuleDefinition, transition: Transition) -> str:
    scope = ", ".join(f"{label} {value}" for label, value in transition.scope) or "all traffic"
    value = "no value" if transition.value is None else f"{transition.value:,.4g}"
    verb = (
        "is back within" if transition.event == "resolved" else f"is {definition.spec.comparison}"
    )
    return (f"{definition.spec.name} for {scope}: {value} {verb} the threshold "
            f"{definition.spec.threshold:,.4g} over the last {definition.window_s:g} s")  # fmt: skip


def describe_retired(transition: Transition) -> str:
    scope = ", ".join(f"{label} {value}" for label, value in transition.scope) or "all traffic"
    return (f"{transition.rule} for {scope}: resolved because the rule is no longer configured "
            "(disabled or removed)")  # fmt: skip


async def evaluate_round(
    engine: AsyncEngine,
    definitions: Sequence[RuleDefinition],
    notifiers: Mapping[str, Notifier],
    now: datetime,
    silences: Sequence[Silence] = (),
) -> list[Transition] | None:
    """Run one round; None when another replica holds the lock."""
    by_name = {definition.spec.name: definition for definition in definitions}
    # Across replicas the advisory lock decides; within a process (and on SQLite) this lock does.
    async with _ROUND_LOCKS.setdefault(engine, asyncio.Lock()), engine.begin() as connection:
        if not await transaction_lock(connection, LockKey.ALERTS):
            return None
        readings = []
        for definition in definitions:
            readings += await READERS[definition.kind](connection, definition, now)
        before = await load_states(connection)
        specs = {name: definition.spec for name, definition in by_name.items()}
        muted = [*silences, *await active_silences(connection, now)]
        after, transitions = evaluate(specs, readings, before, now, muted)
        outbox = []
        for transition in transitions:
            if not transition.notify:
                continue
            configured = by_name.get(transition.rule)
            if configured is None:
                notice = AlertNotice(transition, describe_retired(transition), "-")
            else:
                notice = AlertNotice(
                    transition, describe(configured, transition), f"{configured.window_s:g}s"
                )
            outbox += [(name, notifier.payload(notice)) for name, notifier in notifiers.items()]
        await save_round(connection, before, after, transitions, outbox, now)
    return transitions


async def deliver_round(
    engine: AsyncEngine,
    notifiers: Mapping[str, Notifier],
    session: aiohttp.ClientSession,
    now: datetime,
) -> int:
    """Send what is due; returns how many were delivered."""
    delivered = 0
    async with engine.begin() as connection:
        for item in await claim_due(connection, now):
            notifier = notifiers.get(item.notifier)
            if notifier is None:
                await record_attempt(
                    connection, item, now, sent=False, error=f"no notifier {item.notifier!r}"
                )
                continue
            if too_old(item.created_at, now, MAX_AGE_S):
                await record_attempt(
                    connection, item, now, sent=False, error="gave up: older than an hour"
                )
                continue
            result = await notifier.send(session, item.payload, item.attempts)
            if not result.sent:
                logger.warning(
                    "notification %d via %s failed: %s", item.id, item.notifier, result.error
                )
            await record_attempt(connection, item, now, sent=result.sent, error=result.error,
                                 retry_after_s=result.retry_after_s)  # fmt: skip
            delivered += int(result.sent)
    return delivered
