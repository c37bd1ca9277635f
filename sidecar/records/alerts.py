"""Alert vocabulary: scopes, the state of one alert, transitions and silences, and the stored
events and outbox items read back.

Produced by the pure lifecycle in :mod:`sidecar.alerts.evaluate`, kept by the store, sent by the
notifiers and listed by the CLI: each of them imports these from here, none from another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Scope = tuple[tuple[str, str], ...]  # sorted (label, value) pairs: ("adapter", "support"), ...
Status = Literal["inactive", "pending", "firing"]


def make_scope(labels: Iterable[tuple[str, str]]) -> Scope:
    """The one canonical form of a scope: pairs sorted by label, whatever order they came in.

    Readers build scopes in ``group_by`` order and the store reloads them from a JSON object
    (whose key order Postgres does not keep): both go through here, so a saved state always
    finds its scope again.
    """
    return tuple(sorted((str(label), str(value)) for label, value in labels))


Event = Literal["pending", "firing", "repeat", "resolved", "cleared"]


@dataclass(frozen=True, slots=True)
class AlertState:
    rule: str
    scope: Scope
    status: Status = "inactive"
    active_since: datetime | None = None  # condition true since
    fired_at: datetime | None = None
    last_sent_at: datetime | None = None
    value: float | None = None
    clear_since: datetime | None = None  # firing, condition false since (keep_firing_for_s)


@dataclass(frozen=True, slots=True)
class Transition:
    rule: str
    scope: Scope
    event: Event
    at: datetime
    value: float | None
    threshold: float | None  # None: the rule is no longer configured
    severity: str
    notify: bool  # send a notification (firing, repeat, resolved; never when silenced)
    started_at: datetime | None
    detail: str = ""  # the reading's detail, shown under the summary


@dataclass(frozen=True, slots=True)
class Silence:
    rule: str
    until: datetime
    matchers: Scope = ()  # every (label, value) here must be in the alert's scope

    def covers(self, rule: str, scope: Scope, now: datetime) -> bool:
        return rule == self.rule and now < self.until and set(self.matchers) <= set(scope)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A stored transition (a row of ``alert_events``), as listed by the CLI and the admin API."""

    id: int
    at: datetime
    rule: str
    scope: dict[str, str]  # the labels, as stored
    event: str
    value: float | None
    threshold: float | None
    severity: str
    notified: bool


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A notification claimed for delivery (a row of ``alert_outbox``)."""

    id: int
    notifier: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
