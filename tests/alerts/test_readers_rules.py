"""Alert rules from configuration: built-ins overridden, disabled and extended; bad rules named."""

from __future__ import annotations

import pytest

from sidecar.alerts.readers import rule_definitions
from sidecar.errors import ConfigError
from sidecar.settings import AlertRuleSettings


def test_built_ins_can_be_overridden_disabled_and_extended() -> None:
    rules = {d.spec.name: d for d in rule_definitions([
        AlertRuleSettings(name="latency_p95", threshold=800.0, group_by=["adapter"]),
        AlertRuleSettings(name="satisfaction", enabled=False),
        AlertRuleSettings(name="ttft_p99", kind="latency", threshold=2000.0, comparison="above",
                          quantile=0.99, metric="ttft"),
    ])}  # fmt: skip
    assert rules["latency_p95"].spec.threshold == 800.0
    assert rules["latency_p95"].group_by == ("adapter",)
    assert rules["latency_p95"].spec.min_samples == 50  # untouched fields keep the default
    assert "satisfaction" not in rules
    assert rules["ttft_p99"].options == {"quantile": 0.99, "metric": "ttft"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            AlertRuleSettings(name="x", kind="latency"),
            "alerts.rules[x]: a new rule needs threshold, comparison",
        ),
        (
            AlertRuleSettings(name="latency_p95", kind="nope"),
            "alerts.rules[latency_p95].kind: unknown reader 'nope'",
        ),
        (
            AlertRuleSettings(name="error_rate", group_by=["region"]),
            "alerts.rules[error_rate].group_by: 'region'",
        ),
        (AlertRuleSettings(name="latency_p95", quantile=1.5), "alerts.rules[latency_p95].quantile"),
        (AlertRuleSettings(name="latency_p95", window_s=0), "alerts.rules[latency_p95].window_s"),
        (
            AlertRuleSettings(name="drift", features=["prompt_embeding"]),
            "alerts.rules[drift].features: 'prompt_embeding' is not a drift feature",
        ),
        (
            AlertRuleSettings(name="error_rate", group_by=["model", "model"]),
            "alerts.rules[error_rate].group_by: each label at most once",
        ),
        (
            AlertRuleSettings(name="error_rate", keep_firing_for_s=-1),
            "alerts.rules[error_rate].keep_firing_for_s: must be 0 or more seconds",
        ),
    ],
)
def test_bad_rules_name_the_rule_and_the_field(entry: AlertRuleSettings, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rule_definitions([entry])
