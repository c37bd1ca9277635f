"""Notification bodies (pure): Slack Block Kit with a text fallback, Alertmanager v4 webhook.

Limits follow reference/alerts-drift.md: header <= 150 characters, section text <= 3000, at most
10 fields of <= 2000 each, context <= 10 elements; ``text`` always present; mrkdwn control
characters escaped in values that come from traffic (model and adapter names).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sidecar.alerts.evaluate import Transition

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt for a firing alert
HEADER_MAX, SECTION_MAX, FIELD_MAX, FIELDS_MAX = 150, 3000, 2000, 10


@dataclass(frozen=True, slots=True)
class AlertNotice:
    """Everything a notifier needs about one transition."""

    transition: Transition
    summary: str  # e.g. "P95 latency 812 ms over 500 ms for adapter support"
    window: str = "5m"
    runbook_url: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    source: str = "vllm-sidecar"


def _iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ZERO_TIME


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def labels_of(notice: AlertNotice) -> dict[str, str]:
    transition = notice.transition
    return {"alertname": transition.rule, **dict(transition.scope),
            "severity": transition.severity, **notice.labels}  # fmt: skip


def fingerprint(labels: dict[str, str]) -> str:
    """16 hex characters that depend only on the label set (like Alertmanager's)."""
    text = "\x00".join(f"{key}\x01{labels[key]}" for key in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _state(notice: AlertNotice) -> str:
    return "RESOLVED" if notice.transition.event == "resolved" else "FIRING"


def slack_message(notice: AlertNotice) -> dict[str, Any]:
    transition = notice.transition
    state = _state(notice)
    scope = ", ".join(f"{key}={value}" for key, value in transition.scope) or "all traffic"
    text = _cut(f"[{state}] {transition.rule} - {scope} (severity: {transition.severity})", 4000)
    emoji = ":white_check_mark:" if state == "RESOLVED" else ":rotating_light:"
    value = "-" if transition.value is None else f"{transition.value:,.4g}"
    fields = [
        ("Status", state.lower()), ("Severity", transition.severity),
        ("Value", value), ("Threshold", f"{transition.threshold:,.4g}"),
        ("Window", notice.window), ("Scope", escape(scope)),
        ("Started", _iso(transition.started_at)),
    ]  # fmt: skip
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": _cut(f"{emoji} {state}: {transition.rule}", HEADER_MAX)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(escape(notice.summary), SECTION_MAX)}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": _cut(f"*{name}:*\n{content}", FIELD_MAX)}
            for name, content in fields[:FIELDS_MAX]
        ]},
    ]  # fmt: skip
    if notice.runbook_url:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"<{notice.runbook_url}|Runbook>"},
            }
        )
    blocks += [
        {"type": "divider"},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(
            f"{notice.source} | fingerprint `{fingerprint(labels_of(notice))}` | "
            f"sent {_iso(transition.at)}", FIELD_MAX)}]},
    ]  # fmt: skip
    return {"text": text, "blocks": blocks}


def alertmanager_body(notices: list[AlertNotice], receiver: str = "vllm-sidecar") -> dict[str, Any]:
    """A webhook body in Alertmanager's version-4 shape, so existing receivers accept it."""
    alerts: list[dict[str, Any]] = []
    for notice in notices:
        labels = labels_of(notice)
        resolved = notice.transition.event == "resolved"
        annotations = {"summary": notice.summary}
        if notice.runbook_url:
            annotations["runbook_url"] = notice.runbook_url
        alerts.append({
            "status": "resolved" if resolved else "firing", "labels": labels,
            "annotations": annotations, "startsAt": _iso(notice.transition.started_at),
            "endsAt": _iso(notice.transition.at) if resolved else ZERO_TIME,
            "generatorURL": "", "fingerprint": fingerprint(labels),
        })  # fmt: skip
    common = _common([alert["labels"] for alert in alerts])
    group = {key: common[key] for key in ("alertname",) if key in common}
    status = "firing" if any(alert["status"] == "firing" for alert in alerts) else "resolved"
    return {
        "receiver": receiver, "status": status, "alerts": alerts,
        "groupLabels": group, "commonLabels": common,
        "commonAnnotations": _common([alert["annotations"] for alert in alerts]),
        "externalURL": "", "version": "4",
        "groupKey": "{}:{" + ", ".join(f'{key}="{value}"' for key, value in sorted(group.items())) + "}",
        "truncatedAlerts": 0,
    }  # fmt: skip


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    first = dicts[0]
    return {
        key: value for key, value in first.items() if all(d.get(key) == value for d in dicts[1:])
    }
