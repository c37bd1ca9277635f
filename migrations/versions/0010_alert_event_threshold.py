"""alert_events.threshold may be NULL: an alert resolved because its rule was disabled or
removed has no rule, so no threshold, to compare with.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_events") as batch:
        batch.alter_column("threshold", existing_type=sa.Float(), nullable=True,
                           comment="The rule's threshold (NULL: the rule is no longer configured).")  # fmt: skip


def downgrade() -> None:
    op.execute("UPDATE alert_events SET threshold = 'NaN' WHERE threshold IS NULL")
    with op.batch_alter_table("alert_events") as batch:
        batch.alter_column("threshold", existing_type=sa.Float(), nullable=False,
                           comment="The rule's threshold.")  # fmt: skip
