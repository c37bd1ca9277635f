"""Drift: requests.features (computed by the writer) and drift_checks.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def json_document() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.add_column("requests", sa.Column(
        "features", json_document(), nullable=True,
        comment="Drift features computed by the writer (token and character counts, system "
        "prompt hash, script, word counts...); NULL when drift is off.",
    ))  # fmt: skip
    op.create_table(
        "drift_checks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False, comment="Row id."),
        sa.Column("run_id", sa.String(32), nullable=False, comment="Rows of one run share it."),
        sa.Column("checked_at", when, nullable=False, comment="When the run happened."),
        sa.Column("model", sa.Text(), nullable=True, comment="Model compared."),
        sa.Column("adapter", sa.Text(), nullable=True, comment="Adapter (NULL: base model)."),
        sa.Column("feature", sa.String(64), nullable=False, comment="Feature name."),
        sa.Column("kind", sa.String(16), nullable=False,
                  comment="numerical, categorical or text."),
        sa.Column("statistic", sa.String(32), nullable=False,
                  comment="ks, chi2 (p-values), wasserstein, jensenshannon (distances)."),
        sa.Column("value", sa.Double(), nullable=True, comment="The statistic's value."),
        sa.Column("threshold", sa.Double(), nullable=False, comment="Drift when past this."),
        sa.Column("drifted", sa.Boolean(), nullable=True,
                  comment="The verdict; NULL when there was not enough data (see reason)."),
        sa.Column("psi", sa.Double(), nullable=True,
                  comment="Population stability index, for reference (numerical features)."),
        sa.Column("n_ref", sa.Integer(), nullable=False, comment="Reference samples."),
        sa.Column("n_cur", sa.Integer(), nullable=False, comment="Current samples."),
        sa.Column("reference", sa.String(16), nullable=False,
                  comment="baseline (pinned with sidecar baseline set drift) or rolling."),
        sa.Column("ref_since", when, nullable=False, comment="Reference window start."),
        sa.Column("ref_until", when, nullable=False, comment="Reference window end."),
        sa.Column("cur_since", when, nullable=False, comment="Current window start."),
        sa.Column("cur_until", when, nullable=False, comment="Current window end."),
        sa.Column("reason", sa.Text(), nullable=True,
                  comment="Why there is no verdict (insufficient data, empty window...)."),
        sa.Column("reference_summary", json_document(), nullable=True,
                  comment="Reference window summary (mean/p50/p95 or top shares)."),
        sa.Column("current_summary", json_document(), nullable=True,
                  comment="Current window summary."),
        sa.Column("top_movers", json_document(), nullable=True,
                  comment="[[category or word, reference share, current share], ...]."),
        sa.PrimaryKeyConstraint("id", name="pk_drift_checks"),
        comment="Drift checks: one row per run, model/adapter and feature.",
    )  # fmt: skip
    op.create_index("ix_drift_checks_checked_at", "drift_checks", ["checked_at"])


def downgrade() -> None:
    op.drop_table("drift_checks")
    # Not batch mode: SQLite (3.35+) drops the column in place; a table copy would break the views.
    op.drop_column("requests", "features")
