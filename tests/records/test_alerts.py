"""Alert scopes have one canonical form, and a silence covers exactly what it matches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from sidecar.records import Silence, make_scope

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LABELS = st.lists(st.tuples(st.sampled_from(["model", "adapter", "schema"]), st.text(max_size=5)),
                  max_size=3, unique_by=lambda pair: pair[0])  # fmt: skip


@given(LABELS, st.randoms())
def test_any_label_order_gives_the_same_scope(labels: list[tuple[str, str]], rng: object) -> None:
    shuffled = list(labels)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert make_scope(shuffled) == make_scope(labels) == tuple(sorted(labels))


def test_values_become_text() -> None:
    assert make_scope([("model", 7)]) == (("model", "7"),)  # type: ignore[list-item]


def test_a_silence_covers_its_rule_and_every_matcher_until_it_ends() -> None:
    silence = Silence("p95_latency", NOW + timedelta(hours=1), (("adapter", "support"),))
    scope = make_scope([("model", "tiny"), ("adapter", "support")])
    assert silence.covers("p95_latency", scope, NOW)
    assert not silence.covers("error_rate", scope, NOW)
    assert not silence.covers("p95_latency", (("adapter", "legal"),), NOW)
    assert not silence.covers("p95_latency", scope, NOW + timedelta(hours=1))  # ended
    everything = Silence("p95_latency", NOW + timedelta(hours=1))
    assert everything.covers("p95_latency", (), NOW)
