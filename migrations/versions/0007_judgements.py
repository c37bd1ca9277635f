"""LLM-as-judge: requests.judge_sample, judgements, baselines.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def json_document() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.add_column("requests", sa.Column(
        "judge_sample", sa.String(32), nullable=True,
        comment="Sampled for the judge: random or floor (the unbiased quality sample), "
        "schema_invalid or error (hard cases); NULL when not sampled.",
    ))  # fmt: skip
    op.create_index(
        "ix_requests_judge_sample_started_at", "requests", ["judge_sample", "started_at"]
    )
    op.create_table(
        "judgements",
        sa.Column("request_id", sa.String(32), nullable=False,
                  comment="The requests.id judged (a request is judged at most once)."),
        sa.Column("request_started_at", when, nullable=False,
                  comment="requests.started_at, copied so windows need no join."),
        sa.Column("model", sa.Text(), nullable=True, comment="requests.model, copied."),
        sa.Column("adapter", sa.Text(), nullable=True, comment="requests.adapter, copied."),
        sa.Column("sample_reason", sa.String(32), nullable=False,
                  comment="Why it was judged: random, floor, batch, manual (unbiased: used for "
                  "quality), or schema_invalid, error, thumbs_down (hard cases)."),
        sa.Column("status", sa.String(16), nullable=False,
                  comment="claimed (being judged), scored, error (no score), or unjudgeable."),
        sa.Column("claimed_by", sa.String(64), nullable=False, comment="The replica judging it."),
        sa.Column("claimed_at", when, nullable=False, comment="When it was claimed."),
        sa.Column("judged_at", when, nullable=True,
                  comment="When the verdict (or error) was recorded."),
        sa.Column("rubric", sa.Text(), nullable=True, comment="Rubric name."),
        sa.Column("rubric_version", sa.String(16), nullable=True,
                  comment="Hash of the rubric's text: scores compare only within one."),
        sa.Column("judge_model", sa.Text(), nullable=True, comment="The judge model."),
        sa.Column("score", sa.Double(), nullable=True,
                  comment="Overall score: weighted mean of the criteria, on the rubric's scale."),
        sa.Column("score_normalized", sa.Double(), nullable=True,
                  comment="score mapped to 0-1 ((score - low) / (high - low))."),
        sa.Column("scores", json_document(), nullable=True,
                  comment='Per criterion: {"correctness": 4, ...}.'),
        sa.Column("rationale", sa.Text(), nullable=True, comment="The judge's explanation."),
        sa.Column("latency_ms", sa.Double(), nullable=True, comment="Judge call time, in ms."),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True, comment="Judge input tokens."),
        sa.Column("completion_tokens", sa.Integer(), nullable=True,
                  comment="Judge output tokens."),
        sa.Column("cost_usd", sa.Double(), nullable=True,
                  comment="Judge cost at the configured prices."),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False,
                  comment="Judge calls made (retries included)."),
        sa.Column("error", sa.Text(), nullable=True,
                  comment="Why there is no score (judge error, unusable reply, not judgeable)."),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"],
                                name="fk_judgements_request_id_requests", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("request_id", name="pk_judgements"),
        comment="LLM-as-judge scores: one row per judged request.",
    )  # fmt: skip
    op.create_index("ix_judgements_request_started_at", "judgements", ["request_started_at"])
    op.create_index("ix_judgements_judged_at", "judgements", ["judged_at"])
    op.create_index("ix_judgements_status_claimed_at", "judgements", ["status", "claimed_at"])
    op.create_table(
        "baselines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False, comment="Row id."),
        sa.Column("kind", sa.String(16), nullable=False, comment="quality or drift."),
        sa.Column("model", sa.Text(), nullable=True, comment="Model it applies to."),
        sa.Column("adapter", sa.Text(), nullable=True, comment="Adapter (NULL: base model)."),
        sa.Column("rubric", sa.Text(), nullable=True, comment="quality: the rubric name."),
        sa.Column("rubric_version", sa.String(16), nullable=True,
                  comment="quality: the rubric version the scores came from."),
        sa.Column("since", when, nullable=False, comment="Window start (inclusive)."),
        sa.Column("until", when, nullable=False, comment="Window end (exclusive)."),
        sa.Column("n", sa.Integer(), nullable=False,
                  comment="Samples (scores, or requests for drift)."),
        sa.Column("mean", sa.Double(), nullable=True, comment="quality: mean score."),
        sa.Column("std", sa.Double(), nullable=True, comment="quality: standard deviation."),
        sa.Column("ci_low", sa.Double(), nullable=True, comment="quality: CI lower bound."),
        sa.Column("ci_high", sa.Double(), nullable=True, comment="quality: CI upper bound."),
        sa.Column("confidence", sa.Double(), nullable=True,
                  comment="quality: confidence level of the interval."),
        sa.Column("source", sa.String(16), nullable=False,
                  comment="manual (sidecar baseline set) or auto (first N judged samples)."),
        sa.Column("active", sa.Boolean(), nullable=False,
                  comment="The one in use for its kind and scope; older ones stay for history."),
        sa.Column("created_at", when, nullable=False, comment="When it was set."),
        sa.PrimaryKeyConstraint("id", name="pk_baselines"),
        comment="Baselines per model/adapter: quality score summaries and drift windows.",
    )  # fmt: skip
    op.create_index("ix_baselines_kind_active", "baselines", ["kind", "active"])


def downgrade() -> None:
    op.drop_table("baselines")
    op.drop_table("judgements")
    op.drop_index("ix_requests_judge_sample_started_at", table_name="requests")
    # Not batch mode: SQLite (3.35+) drops the column in place; a table copy would break the views.
    op.drop_column("requests", "judge_sample")
