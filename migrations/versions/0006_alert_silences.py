"""Alert silences: mute a rule (optionally for some labels) until a time.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def json_document() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False, comment="Row id."),
        sa.Column("rule", sa.String(100), nullable=False, comment="The rule silenced."),
        sa.Column("matchers", json_document(), nullable=False,
                  comment="Labels that must all match the alert's scope ({} = every scope)."),
        sa.Column("until", when, nullable=False, comment="Silenced until then."),
        sa.Column("created_at", when, nullable=False, comment="When it was created."),
        sa.Column("comment", sa.Text(), nullable=True, comment="Why."),
        sa.PrimaryKeyConstraint("id", name="pk_alert_silences"),
        comment="Silences: matching alerts keep their state but send nothing.",
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("alert_silences")
