"""Alert persistence: lifecycle state, transitions and the notification outbox."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from sidecar.records import (
    AlertEvent,
    AlertState,
    OutboxItem,
    Scope,
    Silence,
    Transition,
    make_scope,
)
from sidecar.store.tables import (
    alert_events_table,
    alert_outbox_table,
    alert_silences_table,
    alert_state_table,
)


def scope_key(scope: Scope) -> str:
    return ",".join(f"{label}={value}" for label, value in make_scope(scope)) or "-"


async def load_states(connection: AsyncConnection) -> dict[tuple[str, Scope], AlertState]:
    states = {}
    for row in (await connection.execute(sa.select(alert_state_table))).mappings():
        scope = make_scope(dict(row["scope"]).items())
        states[(row["rule"], scope)] = AlertState(
            row["rule"], scope, row["status"], row["active_since"], row["fired_at"],
            row["last_sent_at"], row["value"], row["clear_since"],
        )  # fmt: skip
    return states


async def save_round(
    connection: AsyncConnection,
    before: dict[tuple[str, Scope], AlertState],
    after: dict[tuple[str, Scope], AlertState],
    transitions: Iterable[Transition],
    outbox: Iterable[tuple[str, dict[str, Any]]],
    now: datetime,
) -> None:
    """Write what changed: states, the transitions, the notifications to send."""
    for key, state in after.items():
        if before.get(key) == state:
            continue
        values = {
            "scope": dict(state.scope), "status": state.status, "active_since": state.active_since,
            "fired_at": state.fired_at, "last_sent_at": state.last_sent_at, "value": state.value,
            "clear_since": state.clear_since, "updated_at": now,
        }  # fmt: skip
        where = (alert_state_table.c.rule == state.rule) & (
            alert_state_table.c.scope_key == scope_key(state.scope)
        )
        updated = await connection.execute(sa.update(alert_state_table).where(where).values(values))
        if updated.rowcount == 0:
            await connection.execute(
                sa.insert(alert_state_table).values(
                    rule=state.rule, scope_key=scope_key(state.scope), **values
                )
            )
    events = [
        {"at": t.at, "rule": t.rule, "scope": dict(t.scope), "event": t.event, "value": t.value,
         "threshold": t.threshold, "severity": t.severity, "notified": t.notify}
        for t in transitions
    ]  # fmt: skip
    if events:
        await connection.execute(sa.insert(alert_events_table), events)
    queued = [{"created_at": now, "notifier": name, "payload": payload, "attempts": 0, "next_attempt_at": now}
              for name, payload in outbox]  # fmt: skip
    if queued:
        await connection.execute(sa.insert(alert_outbox_table), queued)


async def claim_due(
    connection: AsyncConnection, now: datetime, limit: int = 20
) -> list[OutboxItem]:
    """Due notifications; on Postgres rows another replica is sending are skipped."""
    table = alert_outbox_table
    query = (
        sa.select(
            table.c.id, table.c.notifier, table.c.payload, table.c.attempts, table.c.created_at
        )
        .where(
            table.c.sent_at.is_(None), table.c.failed_at.is_(None), table.c.next_attempt_at <= now
        )
        .order_by(table.c.id)
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = (await connection.execute(query)).mappings().all()
    return [OutboxItem(row["id"], row["notifier"], dict(row["payload"]), row["attempts"], row["created_at"])
            for row in rows]  # fmt: skip


async def record_attempt(
    connection: AsyncConnection, item: OutboxItem, now: datetime, *,
    sent: bool, error: str | None = None, retry_after_s: float | None = None,
) -> None:  # fmt: skip
    """Mark sent, schedule a retry (``retry_after_s``), or give up (no retry)."""
    table = alert_outbox_table
    values: dict[str, Any] = {"attempts": item.attempts + 1, "last_error": error}
    if sent:
        values["sent_at"] = now
    elif retry_after_s is not None:
        values["next_attempt_at"] = now + timedelta(seconds=retry_after_s)
    else:
        values["failed_at"] = now
    await connection.execute(sa.update(table).where(table.c.id == item.id).values(values))


async def active_silences(connection: AsyncConnection, now: datetime) -> list[Silence]:
    table = alert_silences_table
    rows = (await connection.execute(sa.select(table).where(table.c.until > now))).mappings()
    return [
        Silence(row["rule"], row["until"],
                make_scope(dict(row["matchers"]).items()))
        for row in rows
    ]  # fmt: skip


async def add_silence(
    connection: AsyncConnection, rule: str, matchers: dict[str, str], until: datetime, now: datetime,
    comment: str | None = None,
) -> None:  # fmt: skip
    await connection.execute(sa.insert(alert_silences_table).values(
        rule=rule, matchers=matchers, until=until, created_at=now, comment=comment))  # fmt: skip


async def recent_events(connection: AsyncConnection, limit: int = 20) -> list[AlertEvent]:
    """The newest ``limit`` transitions, newest first."""
    table = alert_events_table
    query = sa.select(table).order_by(table.c.id.desc()).limit(limit)
    return [AlertEvent(**row) for row in (await connection.execute(query)).mappings()]
