"""The alert tables: lifecycle state, every transition, the notification outbox, silences."""

from __future__ import annotations

import sqlalchemy as sa

from sidecar.store.tables.base import UtcDateTime, json_document, metadata

# Current lifecycle state of each alert (rule x scope); survives restarts.
alert_state_table = sa.Table(
    "alert_state",
    metadata,
    sa.Column("rule", sa.String(100), primary_key=True, comment="Rule name."),
    sa.Column(
        "scope_key",
        sa.String(500),
        primary_key=True,
        comment="The scope as text, e.g. model=support.",
    ),
    sa.Column(
        "scope", json_document(), nullable=False, comment="The scope labels as a JSON object."
    ),
    sa.Column("status", sa.String(16), nullable=False, comment="inactive, pending or firing."),
    sa.Column("active_since", UtcDateTime, comment="Condition true since."),
    sa.Column("fired_at", UtcDateTime, comment="When it started firing."),
    sa.Column("last_sent_at", UtcDateTime, comment="Last notification sent."),
    sa.Column("value", sa.Float, comment="Last value read."),
    sa.Column(
        "clear_since",
        UtcDateTime,
        comment="Firing, condition false since (NULL: breached at the last reading).",
    ),
    sa.Column(
        "updated_at", UtcDateTime, nullable=False, comment="Last evaluation that changed the row."
    ),
    comment="Current lifecycle state of each alert (rule x scope); survives restarts.",
)

# Every alert transition, for SQL.
alert_events_table = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True, comment="Row id."),
    sa.Column("at", UtcDateTime, nullable=False, comment="When the transition happened."),
    sa.Column("rule", sa.String(100), nullable=False, comment="Rule name."),
    sa.Column("scope", json_document(), nullable=False, comment="The scope labels."),
    sa.Column(
        "event",
        sa.String(16),
        nullable=False,
        comment="pending, firing, repeat, resolved or cleared.",
    ),
    sa.Column("value", sa.Float, comment="The value that caused it."),
    sa.Column(
        "threshold",
        sa.Float,
        comment="The rule's threshold (NULL: the rule is no longer configured).",
    ),
    sa.Column("severity", sa.String(32), nullable=False, comment="The rule's severity."),
    sa.Column(
        "notified", sa.Boolean, nullable=False, comment="A notification was queued (not silenced)."
    ),
    sa.Index("ix_alert_events_at", "at"),
    comment="Every alert transition, for SQL.",
)

# Notifications waiting for (or done with) delivery.
alert_outbox_table = sa.Table(
    "alert_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True, comment="Row id."),
    sa.Column(
        "created_at", UtcDateTime, nullable=False, comment="When the notification was queued."
    ),
    sa.Column("notifier", sa.String(100), nullable=False, comment="Configured notifier name."),
    sa.Column("payload", json_document(), nullable=False, comment="The body to send."),
    sa.Column(
        "attempts",
        sa.Integer,
        nullable=False,
        server_default="0",
        comment="Delivery attempts so far.",
    ),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False, comment="Not before this time."),
    sa.Column("sent_at", UtcDateTime, comment="Delivered."),
    sa.Column("failed_at", UtcDateTime, comment="Given up (permanent error or too old)."),
    sa.Column("last_error", sa.Text, comment="Why the last attempt failed."),
    sa.Index("ix_alert_outbox_next_attempt_at", "next_attempt_at"),
    comment="Notifications waiting for (or done with) delivery; retried with backoff.",
)

# Silences: matching alerts keep their state but send nothing.
alert_silences_table = sa.Table(
    "alert_silences",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True, comment="Row id."),
    sa.Column("rule", sa.String(100), nullable=False, comment="The rule silenced."),
    sa.Column(
        "matchers",
        json_document(),
        nullable=False,
        comment="Labels that must all match the alert's scope ({} = every scope).",
    ),
    sa.Column("until", UtcDateTime, nullable=False, comment="Silenced until then."),
    sa.Column("created_at", UtcDateTime, nullable=False, comment="When it was created."),
    sa.Column("comment", sa.Text, comment="Why."),
    comment="Silences: matching alerts keep their state but send nothing.",
)
