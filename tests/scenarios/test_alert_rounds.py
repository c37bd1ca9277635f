"""Alerts over many rounds, watched from the outside: a breach held for ten rounds or more gives
exactly one FIRING per scope on Slack and on the webhook, recovery exactly one RESOLVED, and
nothing follows; for every built-in rule that traffic can breach and a custom rule of each kind,
with one, two and three labels in any order; with one sidecar and with two on one Postgres.

Time is compressed (8 s windows, 0.1 s rounds) but nothing is faked inside the sidecar: real
traffic through the proxy, real feedback, the real alert loop, real HTTP sinks.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sidecar.testing.harness import running_sidecar
from sidecar.testing.servers import RunningServer
from tests.helpers import sidecar_settings, wait_for
from tests.scenarios.operator import Sinks, Traffic, running, start_sinks, wait_rounds

SCHEMA = '{"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}'
WINDOW_S = 8.0
MIN_SAMPLES = 12  # a reading waits for a full window: no flapping while traffic warms up
# Rows land up to a second late under load, so a reading falling through its threshold can
# cross it twice within a round or two: the rules hold their FIRING until clear this long.
KEEP_FIRING_FOR_S = 1.5
BUILT_INS = ("latency_p95", "compliance_rate", "error_rate", "satisfaction")
# Each kind, comparing so that the breach traffic crosses it and the recovery traffic does not.
CUSTOM = {
    "t_latency": {"kind": "latency", "threshold": 150.0, "comparison": "above"},
    "t_compliance": {"kind": "compliance_rate", "threshold": 95.0, "comparison": "below"},
    "t_errors": {"kind": "error_rate", "threshold": 5.0, "comparison": "above"},
    # Breach: the error-only scope (schema "", a quarter of 30-60/s) stays well above; recovery
    # (16 workers pausing 4 s) cannot exceed 16 / 4 = 4/s in any scope.
    "t_throughput": {"kind": "throughput", "threshold": 5.0, "comparison": "above"},
    "t_satisfaction": {"kind": "satisfaction", "threshold": 80.0, "comparison": "below"},
}
GROUP_BY_FORMS = [
    ("model",),
    ("schema", "model"),
    ("model", "adapter"),
    ("adapter", "schema", "model"),
]


def rules(group_by: tuple[str, ...]) -> list[dict[str, Any]]:
    fast = {
        "window_s": WINDOW_S,
        "for_s": 0,
        "min_samples": MIN_SAMPLES,
        "repeat_interval_s": 3600,
        "keep_firing_for_s": KEEP_FIRING_FOR_S,
    }
    built_ins = [{"name": name, **fast} for name in BUILT_INS]
    built_ins[0]["threshold"] = 150.0
    custom = [{"name": name, **fast, **kind, "group_by": list(group_by)}
              for name, kind in CUSTOM.items()]  # fmt: skip
    return built_ins + custom


def shape(mode: str, n: int) -> tuple[dict[str, Any], dict[str, str], str | None]:
    """Breach, in every run of eight requests: two slow, two failing, two of the four answers
    checked invalid, every rating down. Recovery: fast, valid, answered, rated up; half without
    a schema, so the scope the failed requests fall in (``schema=""``: an upstream error has no
    output to check) recovers too."""
    body = {"model": "support", "messages": [{"role": "user", "content": f"q{n}"}], "max_tokens": 4}
    headers = {"x-sidecar-schema": "ticket"}
    if mode == "recover":
        return body, ({} if n % 2 else headers) | {"x-fake-output": '{"ok": true}'}, "up"
    kind = ("slow", "error", "valid", "invalid", "slow-invalid", "error", "valid", "invalid")[n % 8]
    headers["x-fake-output"] = "not json" if kind.endswith("invalid") else '{"ok": true}'
    if kind.startswith("slow"):
        headers["x-fake-latency-ms"] = "300"
    if kind == "error":
        headers["x-fake-status"] = "500"
    return body, headers, "down"


def settings_for(upstream: RunningServer, database_url: str, base: Path, sinks: Sinks,
                 group_by: tuple[str, ...], replica: int) -> Any:  # fmt: skip
    schemas = base / "schemas"
    schemas.mkdir(exist_ok=True)
    (schemas / "ticket.json").write_text(SCHEMA)
    return sidecar_settings(
        upstream.url, database_url, base / f"spool-{replica}",
        alerts={"interval_s": 0.1, "log": False, "rules": rules(group_by), **sinks.alert_settings},
        compliance={"schemas_dir": str(schemas)},
    )  # fmt: skip


def per_rule(counts: Counter[tuple[str, str, tuple[tuple[str, str], ...]]], status: str
             ) -> dict[str, list[int]]:  # fmt: skip
    """rule -> notifications of ``status`` per scope (one entry per scope seen)."""
    found: dict[str, list[int]] = {}
    for (seen, rule, _), count in sorted(counts.items()):
        if seen == status:
            found.setdefault(rule, []).append(count)
    return found


def slack_per_rule(sinks: Sinks, state: str) -> Counter[str]:
    return Counter(text.split()[1] for seen, text in sinks.slack() if seen == state)


CASES = [
    *[pytest.param("sqlite", form, 1, id=f"sqlite-{'-'.join(form)}") for form in GROUP_BY_FORMS],
    *[pytest.param("postgres", form, 1, id=f"postgres-{'-'.join(form)}", marks=pytest.mark.postgres)
      for form in GROUP_BY_FORMS[1::2]],
    pytest.param("postgres", ("schema", "model"), 2, id="postgres-two-replicas",
                 marks=pytest.mark.postgres),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("database_url", "group_by", "replicas"), CASES, indirect=["database_url"])
def test_a_held_breach_fires_once_per_scope_and_recovery_resolves_once(
    upstream: RunningServer, database_url: str, tmp_path: Path,
    group_by: tuple[str, ...], replicas: int,
) -> None:  # fmt: skip
    expected = {*BUILT_INS, *CUSTOM}
    sinks = start_sinks()
    try:
        with contextlib.ExitStack() as stack:
            sidecars = [
                stack.enter_context(running_sidecar(
                    settings_for(upstream, database_url, tmp_path, sinks, group_by, replica)))
                for replica in range(replicas)
            ]  # fmt: skip
            admins = [sidecar.admin_url for sidecar in sidecars]
            traffic = stack.enter_context(running(Traffic(sidecars[0].proxy_url, shape)))

            def every_rule_fired() -> bool:
                return set(per_rule(sinks.webhook_counts(), "firing")) >= expected

            wait_for(every_rule_fired, timeout_s=60, what=f"every rule firing ({expected})")
            wait_rounds(admins, 10)  # the breach goes on for ten rounds and more
            firing = sinks.webhook_counts()
            fired = per_rule(firing, "firing")
            assert set(fired) == expected, firing
            assert all(counts == [1] * len(counts) for counts in fired.values()), firing
            scopes = {rule: len(counts) for rule, counts in fired.items()}
            assert slack_per_rule(sinks, "FIRING") == Counter(scopes)
            for (_, rule, labels), _count in firing.items():
                want = set(group_by) if rule in CUSTOM else None
                if want is not None:
                    assert {label for label, _ in labels} == want, (rule, labels)

            # 16 workers, 4 s apart: at most 4/s, under 5; about 16 samples a window in each half
            traffic.mode, traffic.pause_s = "recover", 4.0

            def every_rule_resolved() -> bool:
                resolved = per_rule(sinks.webhook_counts(), "resolved")
                return all(len(resolved.get(rule, [])) == count for rule, count in scopes.items())

            wait_for(every_rule_resolved, timeout_s=60, what="every rule resolved")
            wait_rounds(admins, 10)
            final = sinks.webhook_counts()
            once = {rule: [1] * count for rule, count in scopes.items()}
            assert per_rule(final, "firing") == once, final
            assert per_rule(final, "resolved") == once, final
            assert slack_per_rule(sinks, "RESOLVED") == Counter(scopes)
            assert len(sinks.slack()) == 2 * sum(scopes.values())
    finally:
        assert sinks.server is not None
        sinks.server.stop()
