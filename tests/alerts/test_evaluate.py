"""The alert lifecycle (pure, injected clock, no sleeps)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from sidecar.alerts.evaluate import Reading, RuleSpec, evaluate
from sidecar.records import AlertState, Silence

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
P95 = RuleSpec("latency_p95", threshold=500.0, for_s=120, min_samples=20, repeat_interval_s=3600)
RULES = {P95.name: P95}
SUPPORT = (("adapter", "support"),)
LEGAL = (("adapter", "legal"),)


def step(states, value, minutes, scope=SUPPORT, samples=100, silences=()):  # type: ignore[no-untyped-def]
    return evaluate(RULES, [Reading("latency_p95", scope, value, samples)], states,
                    T0 + timedelta(minutes=minutes), silences)  # fmt: skip


def events(transitions):  # type: ignore[no-untyped-def]
    return [(t.event, t.notify) for t in transitions]


def test_pending_then_firing_after_for_then_resolved() -> None:
    states, out = step({}, 800.0, 0)
    assert events(out) == [("pending", False)]
    states, out = step(states, 900.0, 1)
    assert out == []  # still pending: 60 s < for 120 s
    states, out = step(states, 900.0, 2)
    assert events(out) == [("firing", True)]
    assert out[0].started_at == T0
    assert out[0].value == 900.0
    states, out = step(states, 300.0, 3)
    assert events(out) == [("resolved", True)]
    assert states[("latency_p95", SUPPORT)].status == "inactive"


def test_a_blip_shorter_than_for_never_notifies() -> None:
    states, _ = step({}, 800.0, 0)
    states, out = step(states, 100.0, 1)
    assert events(out) == [("cleared", False)]


def test_keep_firing_for_resolves_only_after_the_condition_stayed_clear() -> None:
    rule = RuleSpec("latency_p95", threshold=500.0, min_samples=20, keep_firing_for_s=120)
    rules = {rule.name: rule}

    def at(states, value, minutes):  # type: ignore[no-untyped-def]
        reading = Reading("latency_p95", SUPPORT, value, 100)
        return evaluate(rules, [reading], states, T0 + timedelta(minutes=minutes))

    states, out = at({}, 900.0, 0)
    assert events(out) == [("firing", True)]
    states, out = at(states, 400.0, 1)  # clear for 0 s: still firing, nothing sent
    assert out == []
    assert states[("latency_p95", SUPPORT)].status == "firing"
    states, out = at(states, 600.0, 2)  # breached again: the clock restarts, no second FIRING
    assert out == []
    assert states[("latency_p95", SUPPORT)].clear_since is None
    states, out = at(states, 400.0, 3)
    states, out = at(states, 400.0, 4)  # clear for 60 s < 120 s
    assert out == []
    states, out = at(states, 400.0, 5)  # clear for 120 s
    assert events(out) == [("resolved", True)]
    resolved = states[("latency_p95", SUPPORT)]
    assert (resolved.status, resolved.clear_since, resolved.active_since) == (
        "inactive",
        None,
        None,
    )


def test_too_few_samples_change_nothing_in_either_direction() -> None:
    states, out = step({}, 900.0, 0, samples=5)
    assert out == []
    assert states == {}
    firing = {
        ("latency_p95", SUPPORT): AlertState("latency_p95", SUPPORT, "firing", T0, T0, T0, 900.0)
    }
    states, out = step(firing, 100.0, 10, samples=3)  # a quiet minute is not a recovery
    assert out == []
    assert states[("latency_p95", SUPPORT)].status == "firing"


def test_each_scope_has_its_own_alert() -> None:
    readings = [
        Reading("latency_p95", SUPPORT, 900.0, 50),
        Reading("latency_p95", LEGAL, 100.0, 50),
    ]
    rule = {"latency_p95": RuleSpec("latency_p95", 500.0)}
    states, out = evaluate(rule, readings, {}, T0)
    assert [(t.scope, t.event) for t in out] == [(SUPPORT, "firing")]
    assert states[("latency_p95", LEGAL)].status == "inactive"


def test_still_firing_is_repeated_after_the_interval_only() -> None:
    states, _ = step({}, 900.0, 0)
    states, out = step(states, 900.0, 2)
    assert events(out) == [("firing", True)]
    states, out = step(states, 900.0, 30)
    assert out == []
    states, out = step(states, 900.0, 62)
    assert events(out) == [("repeat", True)]
    states, out = step(states, 900.0, 70)
    assert out == []


def test_silence_keeps_the_lifecycle_but_sends_nothing() -> None:
    silence = [Silence("latency_p95", T0 + timedelta(hours=2), SUPPORT)]
    states, _ = step({}, 900.0, 0, silences=silence)
    states, out = step(states, 900.0, 2, silences=silence)
    assert events(out) == [("firing", False)]
    _other, out = step({}, 900.0, 0, scope=LEGAL, silences=silence)
    assert events(out) == [("pending", False)]  # another scope is not silenced
    states, out = step(states, 900.0, 3 * 60, silences=silence)  # silence over; repeat due
    assert events(out) == [("repeat", True)]


def test_a_restart_with_persisted_state_does_not_resend() -> None:
    states, _ = step({}, 900.0, 0)
    states, _ = step(states, 900.0, 2)
    persisted = dict(states)  # what the state table would give back after a restart
    _, out = step(persisted, 900.0, 3)
    assert out == []


@given(st.lists(st.floats(min_value=0, max_value=2000), min_size=1, max_size=40))
def test_notifications_alternate_firing_and_resolved(values: list[float]) -> None:
    states: dict = {}  # type: ignore[type-arg]
    sent = []
    for minute, value in enumerate(values):
        states, out = step(states, value, minute * 3)
        sent += [t.event for t in out if t.notify and t.event != "repeat"]
    assert all(a != b for a, b in itertools.pairwise(sent))
    assert not sent or sent[0] == "firing"


def test_a_clock_jumping_back_neither_fires_early_nor_resends() -> None:
    states, _ = step({}, 800.0, 0)
    states, out = step(states, 900.0, -60)  # the wall clock jumps an hour back while pending
    assert out == []
    states, out = step(states, 900.0, 2)
    assert events(out) == [("firing", True)]
    states, out = step(states, 900.0, -30)  # back again while firing: no repeat, no resolve
    assert out == []
    assert states[("latency_p95", SUPPORT)].status == "firing"


def test_a_clock_jumping_forward_fires_once_and_repeats_once() -> None:
    states, _ = step({}, 800.0, 0)
    states, out = step(states, 900.0, 600)  # ten hours later in one step
    assert events(out) == [("firing", True)]
    states, out = step(states, 900.0, 600 + 61)
    assert events(out) == [("repeat", True)]
    states, out = step(states, 900.0, 600 + 62)
    assert out == []


@given(st.permutations([("adapter", "support"), ("model", "tiny"), ("schema", "ticket"),
                        ("upstream", "local")]), st.integers(1, 4))  # fmt: skip
def test_a_scope_is_the_same_scope_whatever_order_its_labels_come_in(
    labels: list[tuple[str, str]], size: int
) -> None:
    """Readers build scopes in ``group_by`` order, the store reloads them sorted: one state."""
    given_order = tuple(labels[:size])
    states, out = evaluate({"x": RuleSpec("x", 1.0)}, [Reading("x", given_order, 2.0, 1)], {}, T0)
    assert events(out) == [("firing", True)]
    reloaded = {(rule, tuple(sorted(scope))): state for (rule, scope), state in states.items()}
    for minutes in range(1, 11):
        again = tuple(reversed(given_order))
        reloaded, out = evaluate({"x": RuleSpec("x", 1.0)}, [Reading("x", again, 2.0, 1)],
                                 reloaded, T0 + timedelta(minutes=minutes))  # fmt: skip
        assert out == []
    assert len(reloaded) == 1


def test_a_rule_removed_while_firing_is_resolved_once_and_a_pending_one_cleared() -> None:
    quick = RuleSpec("latency_p95", threshold=500.0, min_samples=1)
    slow = RuleSpec("slow", threshold=500.0, for_s=600, min_samples=1)
    readings = [Reading("latency_p95", SUPPORT, 900.0, 1), Reading("slow", SUPPORT, 900.0, 1)]
    states, out = evaluate({"latency_p95": quick, "slow": slow}, readings, {}, T0)
    assert events(out) == [("firing", True), ("pending", False)]
    states, out = evaluate({}, readings, states, T0 + timedelta(minutes=1))
    assert [(t.rule, t.event, t.notify) for t in out] == [
        ("latency_p95", "resolved", True), ("slow", "cleared", False)]  # fmt: skip
    states, out = evaluate({}, readings, states, T0 + timedelta(minutes=2))
    assert out == []
    assert {state.status for state in states.values()} == {"inactive"}
