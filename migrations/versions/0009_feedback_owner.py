"""Feedback ownership: feedback.client_key_hash, the client key that wrote each rating.

A rating belongs to its (request, user) and to the key that first wrote it: another key cannot
overwrite it (403), and without the admin token a key reads only its own ratings. Rows written
before this revision have no owner (NULL): only a request without a key can change them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("feedback", sa.Column(
        "client_key_hash", sa.String(16), nullable=True,
        comment="First 16 hex of the SHA-256 of the client key that wrote the rating (as "
        "requests.client_key_hash); only that key may change it. NULL: sent without a key.",
    ))  # fmt: skip


def downgrade() -> None:
    # Not batch mode: SQLite (3.35+) drops the column in place; a table copy would break the views.
    op.drop_column("feedback", "client_key_hash")
