"""The alert lifecycle as a pure function: (readings, previous states, now) -> states, transitions.

inactive -> pending (condition true) -> firing (true for ``for_s``) -> resolved (false again),
like Prometheus; with ``keep_firing_for_s`` a firing alert resolves only once the condition has
been false that long (Prometheus's ``keep_firing_for``), so a reading wobbling around the
threshold does not page, resolve and page again. A reading with fewer samples than the rule's minimum changes nothing: a quiet
hour neither pages anyone nor resolves a real incident. A still-firing alert is re-sent every
``repeat_interval_s``. Silenced alerts change state but send nothing. An alert whose rule is no
longer configured is resolved (threshold None: there is no rule to compare with).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sidecar.records import AlertState, Event, Scope, Silence, Transition, make_scope


@dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    threshold: float
    comparison: Literal["above", "below"] = "above"
    for_s: float = 0.0
    min_samples: int = 1
    repeat_interval_s: float = 4 * 3600.0
    severity: str = "warning"
    keep_firing_for_s: float = 0.0  # a firing alert resolves once clear for this long

    def breached(self, value: float) -> bool:
        return value > self.threshold if self.comparison == "above" else value < self.threshold


@dataclass(frozen=True, slots=True)
class Reading:
    rule: str
    scope: Scope
    value: float | None  # None: no value could be computed (nothing to measure)
    samples: int
    detail: str = ""  # what a human should look at, e.g. the drifted features and moved prompts


def evaluate(
    rules: Mapping[str, RuleSpec],
    readings: Iterable[Reading],
    states: Mapping[tuple[str, Scope], AlertState],
    now: datetime,
    silences: Iterable[Silence] = (),
) -> tuple[dict[tuple[str, Scope], AlertState], list[Transition]]:
    """The next states (all of them, changed or not) and the transitions of this round."""
    silences = list(silences)
    next_states = dict(states)
    transitions: list[Transition] = []
    for reading in readings:
        rule = rules.get(reading.rule)
        if rule is None or reading.value is None or reading.samples < rule.min_samples:
            continue
        scope = make_scope(reading.scope)
        key = (reading.rule, scope)
        state = next_states.get(key) or AlertState(reading.rule, scope)
        silenced = any(s.covers(reading.rule, scope, now) for s in silences)
        new_state, event = _step(rule, state, rule.breached(reading.value), reading.value, now)
        if event is not None:
            notify = event in ("firing", "repeat", "resolved") and not silenced
            if notify:
                new_state = dataclasses.replace(new_state, last_sent_at=now)
            transitions.append(Transition(rule.name, scope, event, now, reading.value,
                                          rule.threshold, rule.severity, notify,
                                          state.active_since or new_state.active_since,
                                          reading.detail))  # fmt: skip
        next_states[key] = new_state
    transitions += _retire(rules, next_states, now)
    return next_states, transitions


def _retire(
    rules: Mapping[str, RuleSpec], states: dict[tuple[str, Scope], AlertState], now: datetime
) -> list[Transition]:
    """States of rules no longer configured (disabled or removed while active) end here: a firing
    one is resolved (and says so, so a receiver closes its incident), a pending one cleared."""
    transitions = []
    for key, state in list(states.items()):
        if state.rule in rules or state.status == "inactive":
            continue
        event: Event = "resolved" if state.status == "firing" else "cleared"
        transitions.append(Transition(state.rule, state.scope, event, now, state.value, None,
                                      "info", event == "resolved", state.active_since))  # fmt: skip
        states[key] = AlertState(state.rule, state.scope, value=state.value)
    return transitions


def _step(
    rule: RuleSpec, state: AlertState, breached: bool, value: float, now: datetime
) -> tuple[AlertState, Event | None]:
    if not breached:
        if state.status == "firing":
            clear_since = state.clear_since or now
            if (now - clear_since).total_seconds() < rule.keep_firing_for_s:
                return dataclasses.replace(state, value=value, clear_since=clear_since), None
            return AlertState(state.rule, state.scope, value=value), "resolved"
        if state.status == "pending":
            return AlertState(state.rule, state.scope, value=value), "cleared"
        return dataclasses.replace(state, value=value), None
    if state.status == "inactive":
        pending = dataclasses.replace(state, status="pending", active_since=now, value=value)
        if rule.for_s <= 0:
            return dataclasses.replace(pending, status="firing", fired_at=now), "firing"
        return pending, "pending"
    if state.status == "pending":
        since = state.active_since or now
        if (now - since).total_seconds() >= rule.for_s:
            return dataclasses.replace(state, status="firing", fired_at=now, value=value), "firing"
        return dataclasses.replace(state, value=value), None
    last = state.last_sent_at or state.fired_at or now
    state = dataclasses.replace(state, value=value, clear_since=None)
    if (now - last).total_seconds() >= rule.repeat_interval_s:
        return state, "repeat"
    return state, None
