"""requests.prompt_embedding and requests.output_embedding: packed sentence vectors for
semantic drift (drift.embeddings, docs/drift.md).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROMPT = ("Sentence vector of the last user message as stored (drift.embeddings): a format "
          "byte and 256 int8 components; NULL when off or there is no text.")  # fmt: skip
OUTPUT = ("Sentence vector of the output as stored (drift.embeddings): a format byte and 256 "
          "int8 components; NULL when off or there is no text.")  # fmt: skip


def upgrade() -> None:
    op.add_column("requests", sa.Column("prompt_embedding", sa.LargeBinary(), nullable=True,
                                        comment=PROMPT))  # fmt: skip
    op.add_column("requests", sa.Column("output_embedding", sa.LargeBinary(), nullable=True,
                                        comment=OUTPUT))  # fmt: skip


def downgrade() -> None:
    # Not batch mode: SQLite (3.35+) drops the column in place; a table copy would break the views.
    op.drop_column("requests", "output_embedding")
    op.drop_column("requests", "prompt_embedding")
