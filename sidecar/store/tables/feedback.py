"""``feedback``: what end users thought of responses (``POST /sidecar/v1/feedback``)."""

from __future__ import annotations

import sqlalchemy as sa

from sidecar.store.tables.base import UtcDateTime, metadata

# What an end user thought of one response (POST /sidecar/v1/feedback).
feedback_table = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True, comment="Row id."),
    sa.Column(
        "request_id",
        sa.String(32),
        sa.ForeignKey("requests.id", ondelete="CASCADE", name="fk_feedback_request_id_requests"),
        nullable=False,
        comment="The requests.id the feedback is about.",
    ),
    sa.Column(
        "user_id",
        sa.String(200),
        nullable=False,
        server_default="",
        comment="Who gave it (empty when anonymous); one row per request and user.",
    ),
    sa.Column("rating", sa.String(8), nullable=False, comment="As given: up, down, or 1-5."),
    sa.Column(
        "score", sa.Integer, nullable=False, comment="The rating on a 1-5 scale (up = 5, down = 1)."
    ),
    sa.Column(
        "satisfied",
        sa.Boolean,
        nullable=False,
        comment="up, or a score of 4 or 5: what the satisfaction rate counts.",
    ),
    sa.Column(
        "escalated",
        sa.Boolean,
        nullable=False,
        server_default=sa.false(),
        comment="The user escalated to a human.",
    ),
    sa.Column("comment", sa.Text, comment="Free text from the user."),
    sa.Column(
        "created_at",
        UtcDateTime,
        nullable=False,
        comment="First time this user rated this request.",
    ),
    sa.Column(
        "updated_at",
        UtcDateTime,
        nullable=False,
        comment="Last change (a repeated post updates the row).",
    ),
    sa.Column(
        "client_key_hash",
        sa.String(16),
        comment="First 16 hex of the SHA-256 of the client key that wrote the rating (as "
        "requests.client_key_hash); only that key may change it. NULL: sent without a key.",
    ),
    sa.UniqueConstraint("request_id", "user_id", name="uq_feedback_request_id_user_id"),
    sa.Index("ix_feedback_created_at", "created_at"),
    comment="End-user feedback on responses: POST /sidecar/v1/feedback.",
)
