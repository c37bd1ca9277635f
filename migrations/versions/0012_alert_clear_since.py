"""alert_state.clear_since: when a firing alert's condition last turned false, so a rule with
keep_firing_for_s resolves only once it has stayed clear that long, across restarts.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMENT = "Firing, condition false since (NULL: breached at the last reading)."


def upgrade() -> None:
    op.add_column("alert_state", sa.Column("clear_since", sa.DateTime(timezone=True),
                                           nullable=True, comment=COMMENT))  # fmt: skip


def downgrade() -> None:
    op.drop_column("alert_state", "clear_since")
