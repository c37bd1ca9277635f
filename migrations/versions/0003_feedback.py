"""Feedback: what end users thought of a response (thumbs or 1-5, escalations, comments).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True,
                  comment="Row id."),
        sa.Column("request_id", sa.String(32), sa.ForeignKey("requests.id", ondelete="CASCADE",
                  name="fk_feedback_request_id_requests"), nullable=False,
                  comment="The requests.id the feedback is about."),
        sa.Column("user_id", sa.String(200), nullable=False, server_default="",
                  comment="Who gave it (empty when anonymous); one row per request and user."),
        sa.Column("rating", sa.String(8), nullable=False,
                  comment="As given: up, down, or 1-5."),
        sa.Column("score", sa.Integer(), nullable=False,
                  comment="The rating on a 1-5 scale (up = 5, down = 1)."),
        sa.Column("satisfied", sa.Boolean(), nullable=False,
                  comment="up, or a score of 4 or 5: what the satisfaction rate counts."),
        sa.Column("escalated", sa.Boolean(), nullable=False, server_default=sa.false(),
                  comment="The user escalated to a human."),
        sa.Column("comment", sa.Text(), nullable=True, comment="Free text from the user."),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  comment="First time this user rated this request."),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  comment="Last change (a repeated post updates the row)."),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        sa.UniqueConstraint("request_id", "user_id", name="uq_feedback_request_id_user_id"),
        comment="End-user feedback on responses: POST /sidecar/v1/feedback.",
    )  # fmt: skip
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_created_at", table_name="feedback")
    op.drop_table("feedback")
