"""Slack and Alertmanager bodies have the documented shapes and stay within Slack's limits."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from sidecar.logs import neutral
from sidecar.notifiers.payloads import (
    AlertNotice,
    alertmanager_body,
    fingerprint,
    log_line,
    slack_message,
)
from sidecar.records import Transition

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def notice(event: str = "firing", adapter: str = "support") -> AlertNotice:
    transition = Transition("latency_p95", (("adapter", adapter),), event, T0 + timedelta(minutes=5),  # type: ignore[arg-type]
                            812.0, 500.0, "page", True, T0)  # fmt: skip
    return AlertNotice(transition, f"P95 latency 812 ms over 500 ms for adapter {adapter}",
                       runbook_url="https://runbooks.example.com/latency")  # fmt: skip


def test_slack_message_has_text_fallback_header_fields_and_context() -> None:
    message = slack_message(notice())
    assert message["text"] == "[FIRING] latency_p95 - adapter=support (severity: page)"
    types = [block["type"] for block in message["blocks"]]
    assert types == ["header", "section", "section", "section", "divider", "context"]
    header = message["blocks"][0]["text"]
    assert header["type"] == "plain_text"
    assert header["text"].endswith("FIRING: latency_p95")
    fields = {f["text"].split(":*")[0].strip("*") for f in message["blocks"][2]["fields"]}
    assert {"Value", "Threshold", "Window", "Scope", "Severity"} <= fields


def test_slack_limits_and_escaping_hold_for_hostile_names() -> None:
    hostile = notice(adapter="<!channel> & " + "x" * 5000)
    message = slack_message(hostile)
    assert len(message["blocks"][0]["text"]["text"]) <= 150
    assert all(len(f["text"]) <= 2000 for f in message["blocks"][2]["fields"])
    assert len(message["blocks"][2]["fields"]) <= 10
    assert len(message["blocks"][1]["text"]["text"]) <= 3000
    assert "<!channel>" not in str(message["blocks"])
    assert "&lt;!channel&gt; &amp;" in message["blocks"][2]["fields"][5]["text"]


def test_resolved_message_reuses_the_layout() -> None:
    message = slack_message(notice("resolved"))
    assert message["text"].startswith("[RESOLVED]")
    assert "RESOLVED: latency_p95" in message["blocks"][0]["text"]["text"]


def test_alertmanager_v4_body() -> None:
    body = alertmanager_body([notice()])
    assert body["version"] == "4"
    assert body["status"] == "firing"
    (alert,) = body["alerts"]
    assert alert["labels"] == {"alertname": "latency_p95", "adapter": "support", "severity": "page"}
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["startsAt"] == "2026-11-29T12:00:00Z"
    assert len(alert["fingerprint"]) == 16
    assert alert["fingerprint"] == fingerprint(alert["labels"])
    assert body["groupLabels"] == {"alertname": "latency_p95"}
    assert body["groupKey"] == '{}:{alertname="latency_p95"}'
    assert body["truncatedAlerts"] == 0
    resolved = alertmanager_body([notice("resolved")])
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["endsAt"] == "2026-11-29T12:05:00Z"


def test_slack_text_fallback_escapes_mentions_and_links_from_traffic() -> None:
    message = slack_message(notice(adapter="<!channel> <http://evil|click>"))
    assert message["text"] == (
        "[FIRING] latency_p95 - adapter=&lt;!channel&gt; &lt;http://evil|click&gt; (severity: page)"
    )
    mrkdwn = [message["blocks"][1]["text"], *message["blocks"][2]["fields"]]
    assert all(item["verbatim"] is True for item in mrkdwn)


def test_neutral_makes_control_characters_and_bidi_overrides_visible() -> None:
    assert (
        neutral("a\nb\r\tc\x1b[31m\u202eevil\u2028") == "a\\nb\\r\\tc\\u001b[31m\\u202eevil\\u2028"
    )
    assert neutral("plain <text> & ünïcode") == "plain <text> & ünïcode"


def test_a_newline_in_a_name_cannot_start_a_log_line_or_break_webhook_labels() -> None:
    hostile = notice(adapter="x\n2026-12-03 CRITICAL sidecar: forged")
    assert "\n" not in log_line(hostile)
    (alert,) = alertmanager_body([hostile])["alerts"]
    assert alert["labels"]["adapter"] == "x\\n2026-12-03 CRITICAL sidecar: forged"
    assert alert["fingerprint"] == fingerprint(alert["labels"])


def test_a_reading_detail_is_shown_under_the_summary_escaped_everywhere() -> None:
    """A drift alert's detail quotes prompts from traffic: hostile text, shown but never parsed."""
    base = notice()
    detail = 'drifted: prompt_embedding (mmd 0.005); prompts that moved: "<!channel> pay\nnow"'
    transition = dataclasses.replace(base.transition, detail=detail)
    with_detail = AlertNotice(transition, base.summary)
    blocks = slack_message(with_detail)["blocks"]
    assert [block["type"] for block in blocks][:4] == ["header", "section", "section", "section"]
    shown = blocks[2]["text"]
    assert shown["verbatim"] is True
    assert shown["text"] == (
        'drifted: prompt_embedding (mmd 0.005); prompts that moved: "&lt;!channel&gt; pay\\nnow"'
    )
    annotations = alertmanager_body([with_detail])["alerts"][0]["annotations"]
    assert annotations["description"] == neutral(detail)
    assert "\n" not in log_line(with_detail)
    assert log_line(with_detail).endswith("| " + neutral(detail))
    assert "description" not in alertmanager_body([base])["alerts"][0]["annotations"]
