"""Alerts: lifecycle state per rule and scope, every transition, and the notification outbox.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def json_document() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "alert_state",
        sa.Column("rule", sa.String(100), nullable=False, comment="Rule name."),
        sa.Column(
            "scope_key",
            sa.String(500),
            nullable=False,
            comment="The scope as text, e.g. model=support.",
        ),
        sa.Column(
            "scope", json_document(), nullable=False, comment="The scope labels as a JSON object."
        ),
        sa.Column("status", sa.String(16), nullable=False, comment="inactive, pending or firing."),
        sa.Column("active_since", when, nullable=True, comment="Condition true since."),
        sa.Column("fired_at", when, nullable=True, comment="When it started firing."),
        sa.Column("last_sent_at", when, nullable=True, comment="Last notification sent."),
        sa.Column("value", sa.Float(), nullable=True, comment="Last value read."),
        sa.Column(
            "updated_at", when, nullable=False, comment="Last evaluation that changed the row."
        ),
        sa.PrimaryKeyConstraint("rule", "scope_key", name="pk_alert_state"),
        comment="Current lifecycle state of each alert (rule x scope); survives restarts.",
    )
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False, comment="Row id."),
        sa.Column("at", when, nullable=False, comment="When the transition happened."),
        sa.Column("rule", sa.String(100), nullable=False, comment="Rule name."),
        sa.Column("scope", json_document(), nullable=False, comment="The scope labels."),
        sa.Column(
            "event",
            sa.String(16),
            nullable=False,
            comment="pending, firing, repeat, resolved or cleared.",
        ),
        sa.Column("value", sa.Float(), nullable=True, comment="The value that caused it."),
        sa.Column("threshold", sa.Float(), nullable=False, comment="The rule's threshold."),
        sa.Column("severity", sa.String(32), nullable=False, comment="The rule's severity."),
        sa.Column(
            "notified",
            sa.Boolean(),
            nullable=False,
            comment="A notification was queued (not silenced).",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alert_events"),
        comment="Every alert transition, for SQL.",
    )
    op.create_index("ix_alert_events_at", "alert_events", ["at"])
    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False, comment="Row id."),
        sa.Column("created_at", when, nullable=False, comment="When the notification was queued."),
        sa.Column("notifier", sa.String(100), nullable=False, comment="Configured notifier name."),
        sa.Column("payload", json_document(), nullable=False, comment="The body to send."),
        sa.Column(
            "attempts",
            sa.Integer(),
            nullable=False,
            server_default="0",
            comment="Delivery attempts so far.",
        ),
        sa.Column("next_attempt_at", when, nullable=False, comment="Not before this time."),
        sa.Column("sent_at", when, nullable=True, comment="Delivered."),
        sa.Column(
            "failed_at", when, nullable=True, comment="Given up (permanent error or too old)."
        ),
        sa.Column("last_error", sa.Text(), nullable=True, comment="Why the last attempt failed."),
        sa.PrimaryKeyConstraint("id", name="pk_alert_outbox"),
        comment="Notifications waiting for (or done with) delivery; retried with backoff.",
    )
    op.create_index("ix_alert_outbox_next_attempt_at", "alert_outbox", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_outbox_next_attempt_at", table_name="alert_outbox")
    op.drop_table("alert_outbox")
    op.drop_index("ix_alert_events_at", table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_table("alert_state")
