"""ScopeMatch: a field left None matches anything, a named field only its own value."""

from __future__ import annotations

import pytest

from sidecar.records import ScopeMatch


def test_an_empty_scope_matches_everything() -> None:
    assert ScopeMatch().matches(None, None)
    assert ScopeMatch().matches("support", "legal", schema="triage", path="/v1/completions")


@pytest.mark.parametrize(
    ("scope", "matched", "missed"),
    [
        (ScopeMatch(model="support"), ("support", None, {}), ("other", None, {})),
        (ScopeMatch(adapter="legal"), ("base", "legal", {}), ("base", None, {})),
        (ScopeMatch(schema="triage"), (None, None, {"schema": "triage"}), (None, None, {})),
        (
            ScopeMatch(path="/v1/chat/completions"),
            (None, None, {"path": "/v1/chat/completions"}),
            (None, None, {"path": "/v1/completions"}),
        ),
    ],
)
def test_a_named_field_matches_only_its_value(
    scope: ScopeMatch,
    matched: tuple[str | None, str | None, dict[str, str]],
    missed: tuple[str | None, str | None, dict[str, str]],
) -> None:
    model, adapter, given = matched
    assert scope.matches(model, adapter, **given)
    model, adapter, given = missed
    assert not scope.matches(model, adapter, **given)


def test_every_named_field_must_match() -> None:
    scope = ScopeMatch(model="support", adapter="legal", path="/v1/chat/completions")
    assert scope.matches("support", "legal", path="/v1/chat/completions")
    assert not scope.matches("support", "other", path="/v1/chat/completions")
    assert not scope.matches("support", "legal")  # no path given: a scope naming one misses
