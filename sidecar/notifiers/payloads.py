"""Notification bodies (pure): Slack Block Kit with a text fallback, Alertmanager v4 webhook.

Limits follow reference/alerts-drift.md: header <= 150 characters, section text <= 3000, at most
10 fields of <= 2000 each, context <= 10 elements; ``text`` always present.

Values that come from traffic (model and adapter names in the scope and the summary) are
hostile text. Everywhere: control characters, line separators and bidi overrides become visible
escapes (a newline shows as backslash-n, U+202E as backslash-u202e: :func:`neutral`), so no value
forges a log line or a field.
In Slack mrkdwn (``text`` and blocks) also ``&``, ``<``, ``>`` become ``&amp;``, ``&lt;``,
``&gt;``, as Slack's "Formatting text for app surfaces: escaping text" asks (:func:`mrkdwn`), so
``<!channel>`` and ``<http://evil|click>`` are shown, not parsed; and the mrkdwn objects that
carry them are ``verbatim`` (no automatic links or mentions).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sidecar.logs import neutral
from sidecar.records import Transition

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
    """Slack's three mrkdwn control characters as the HTML entities Slack documents."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str) -> str:
    """Traffic-derived ``text``, safe inside a Slack mrkdwn string."""
    return escape(neutral(text))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def labels_of(notice: AlertNotice) -> dict[str, str]:
    """The alert's labels, values :func:`neutral` (webhook receivers template them into text)."""
    transition = notice.transition
    labels = {"alertname": transition.rule, **dict(transition.scope),
              "severity": transition.severity, **notice.labels}  # fmt: skip
    return {neutral(key): neutral(value) for key, value in labels.items()}


def _scope(notice: AlertNotice) -> str:
    return ", ".join(f"{key}={value}" for key, value in notice.transition.scope) or "all traffic"


def log_line(notice: AlertNotice) -> str:
    """One log line for the alert: plain text, nothing in it can start another line."""
    transition = notice.transition
    detail = f" | {transition.detail}" if transition.detail else ""
    return neutral(f"[{_state(notice)}] {transition.rule} - {_scope(notice)} "
                   f"(severity: {transition.severity}): {notice.summary}{detail}")  # fmt: skip


def fingerprint(labels: dict[str, str]) -> str:
    """16 hex characters that depend only on the label set (like Alertmanager's)."""
    text = "\x00".join(f"{key}\x01{labels[key]}" for key in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _state(notice: AlertNotice) -> str:
    return "RESOLVED" if notice.transition.event == "resolved" else "FIRING"


def slack_message(notice: AlertNotice) -> dict[str, Any]:
    transition = notice.transition
    state = _state(notice)
    scope = mrkdwn(_scope(notice))
    text = _cut(
        f"[{state}] {mrkdwn(transition.rule)} - {scope} (severity: {transition.severity})", 4000
    )
    emoji = ":white_check_mark:" if state == "RESOLVED" else ":rotating_light:"
    value = "-" if transition.value is None else f"{transition.value:,.4g}"
    fields = [
        ("Status", state.lower()), ("Severity", transition.severity),
        ("Value", value), ("Threshold", "-" if transition.threshold is None else f"{transition.threshold:,.4g}"),
        ("Window", notice.window), ("Scope", scope),
        ("Started", _iso(transition.started_at)),
    ]  # fmt: skip
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": _cut(f"{emoji} {state}: {neutral(transition.rule)}", HEADER_MAX)}},
        {"type": "section", "text": {"type": "mrkdwn", "verbatim": True,
                                     "text": _cut(mrkdwn(notice.summary), SECTION_MAX)}},
        *([{"type": "section", "text": {"type": "mrkdwn", "verbatim": True,
                                        "text": _cut(mrkdwn(transition.detail), SECTION_MAX)}}]
          if transition.detail else []),
        {"type": "section", "fields": [
            {"type": "mrkdwn", "verbatim": True, "text": _cut(f"*{name}:*\n{content}", FIELD_MAX)}
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
        annotations = {"summary": neutral(notice.summary)}
        if notice.transition.detail:
            annotations["description"] = neutral(notice.transition.detail)
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
        "groupKey": "{}:{" + ", ".join(f"{key}={json.dumps(value)}" for key, value in sorted(group.items())) + "}",
        "truncatedAlerts": 0,
    }  # fmt: skip


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    first = dicts[0]
    return {
        key: value for key, value in first.items() if all(d.get(key) == value for d in dicts[1:])
    }
