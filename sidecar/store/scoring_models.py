"""Tables for what is computed about requests after they are logged: judge scores, baselines
and drift checks.

Defined on the same metadata as :mod:`sidecar.store.models` (which imports this module), so the
migrations check covers them.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from sidecar.records import JsonValue
from sidecar.store.models import Base, UtcDateTime, json_document


class JudgementRow(Base):
    """One judge verdict per request: claimed first, then scored (or an error recorded)."""

    __tablename__ = "judgements"
    __table_args__ = (
        sa.Index("ix_judgements_request_started_at", "request_started_at"),
        sa.Index("ix_judgements_judged_at", "judged_at"),
        sa.Index("ix_judgements_status_claimed_at", "status", "claimed_at"),
        {"comment": "LLM-as-judge scores: one row per judged request."},
    )

    request_id: Mapped[str] = mapped_column(
        sa.String(32),
        sa.ForeignKey("requests.id", ondelete="CASCADE", name="fk_judgements_request_id_requests"),
        primary_key=True,
        comment="The requests.id judged (a request is judged at most once).",
    )
    request_started_at: Mapped[datetime] = mapped_column(
        UtcDateTime, comment="requests.started_at, copied so windows need no join."
    )
    model: Mapped[str | None] = mapped_column(sa.Text, comment="requests.model, copied.")
    adapter: Mapped[str | None] = mapped_column(sa.Text, comment="requests.adapter, copied.")
    sample_reason: Mapped[str] = mapped_column(
        sa.String(32),
        comment="Why it was judged: random, floor, batch, manual (unbiased: used for quality), "
        "or schema_invalid, error, thumbs_down (hard cases).",
    )
    status: Mapped[str] = mapped_column(
        sa.String(16),
        comment="claimed (being judged), scored, error (no score), or unjudgeable.",
    )
    claimed_by: Mapped[str] = mapped_column(sa.String(64), comment="The replica judging it.")
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime, comment="When it was claimed.")
    judged_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="When the verdict (or error) was recorded."
    )
    rubric: Mapped[str | None] = mapped_column(sa.Text, comment="Rubric name.")
    rubric_version: Mapped[str | None] = mapped_column(
        sa.String(16), comment="Hash of the rubric's text: scores compare only within one."
    )
    judge_model: Mapped[str | None] = mapped_column(sa.Text, comment="The judge model.")
    score: Mapped[float | None] = mapped_column(
        sa.Double, comment="Overall score: weighted mean of the criteria, on the rubric's scale."
    )
    score_normalized: Mapped[float | None] = mapped_column(
        sa.Double, comment="score mapped to 0-1 ((score - low) / (high - low))."
    )
    scores: Mapped[JsonValue] = mapped_column(
        json_document(), comment='Per criterion: {"correctness": 4, ...}.'
    )
    rationale: Mapped[str | None] = mapped_column(sa.Text, comment="The judge's explanation.")
    latency_ms: Mapped[float | None] = mapped_column(sa.Double, comment="Judge call time, in ms.")
    prompt_tokens: Mapped[int | None] = mapped_column(sa.Integer, comment="Judge input tokens.")
    completion_tokens: Mapped[int | None] = mapped_column(
        sa.Integer, comment="Judge output tokens."
    )
    cost_usd: Mapped[float | None] = mapped_column(
        sa.Double, comment="Judge cost at the configured prices."
    )
    attempts: Mapped[int] = mapped_column(
        sa.Integer, server_default="0", comment="Judge calls made (retries included)."
    )
    error: Mapped[str | None] = mapped_column(
        sa.Text, comment="Why there is no score (judge error, unusable reply, not judgeable)."
    )


class BaselineRow(Base):
    """A reference to compare against: judge scores (quality) or a traffic window (drift)."""

    __tablename__ = "baselines"
    __table_args__ = (
        sa.Index("ix_baselines_kind_active", "kind", "active"),
        {"comment": "Baselines per model/adapter: quality score summaries and drift windows."},
    )

    id: Mapped[int] = mapped_column(
        sa.Integer, primary_key=True, autoincrement=True, comment="Row id."
    )
    kind: Mapped[str] = mapped_column(sa.String(16), comment="quality or drift.")
    model: Mapped[str | None] = mapped_column(sa.Text, comment="Model it applies to.")
    adapter: Mapped[str | None] = mapped_column(sa.Text, comment="Adapter (NULL: base model).")
    rubric: Mapped[str | None] = mapped_column(sa.Text, comment="quality: the rubric name.")
    rubric_version: Mapped[str | None] = mapped_column(
        sa.String(16), comment="quality: the rubric version the scores came from."
    )
    since: Mapped[datetime] = mapped_column(UtcDateTime, comment="Window start (inclusive).")
    until: Mapped[datetime] = mapped_column(UtcDateTime, comment="Window end (exclusive).")
    n: Mapped[int] = mapped_column(sa.Integer, comment="Samples (scores, or requests for drift).")
    mean: Mapped[float | None] = mapped_column(sa.Double, comment="quality: mean score.")
    std: Mapped[float | None] = mapped_column(sa.Double, comment="quality: standard deviation.")
    ci_low: Mapped[float | None] = mapped_column(sa.Double, comment="quality: CI lower bound.")
    ci_high: Mapped[float | None] = mapped_column(sa.Double, comment="quality: CI upper bound.")
    confidence: Mapped[float | None] = mapped_column(
        sa.Double, comment="quality: confidence level of the interval."
    )
    source: Mapped[str] = mapped_column(
        sa.String(16), comment="manual (sidecar baseline set) or auto (first N judged samples)."
    )
    active: Mapped[bool] = mapped_column(
        sa.Boolean, comment="The one in use for its kind and scope; older ones stay for history."
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, comment="When it was set.")


class DriftCheckRow(Base):
    """One feature compared between a reference and a current window, per drift run and scope."""

    __tablename__ = "drift_checks"
    __table_args__ = (
        sa.Index("ix_drift_checks_checked_at", "checked_at"),
        {"comment": "Drift checks: one row per run, model/adapter and feature."},
    )

    id: Mapped[int] = mapped_column(
        sa.Integer, primary_key=True, autoincrement=True, comment="Row id."
    )
    run_id: Mapped[str] = mapped_column(sa.String(32), comment="Rows of one run share it.")
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime, comment="When the run happened.")
    model: Mapped[str | None] = mapped_column(sa.Text, comment="Model compared.")
    adapter: Mapped[str | None] = mapped_column(sa.Text, comment="Adapter (NULL: base model).")
    feature: Mapped[str] = mapped_column(sa.String(64), comment="Feature name.")
    kind: Mapped[str] = mapped_column(sa.String(16), comment="numerical, categorical or text.")
    statistic: Mapped[str] = mapped_column(
        sa.String(32), comment="ks, chi2 (p-values), wasserstein, jensenshannon (distances)."
    )
    value: Mapped[float | None] = mapped_column(sa.Double, comment="The statistic's value.")
    threshold: Mapped[float] = mapped_column(sa.Double, comment="Drift when past this.")
    drifted: Mapped[bool | None] = mapped_column(
        sa.Boolean, comment="The verdict; NULL when there was not enough data (see reason)."
    )
    psi: Mapped[float | None] = mapped_column(
        sa.Double, comment="Population stability index, for reference (numerical features)."
    )
    n_ref: Mapped[int] = mapped_column(sa.Integer, comment="Reference samples.")
    n_cur: Mapped[int] = mapped_column(sa.Integer, comment="Current samples.")
    reference: Mapped[str] = mapped_column(
        sa.String(16), comment="baseline (pinned with sidecar baseline set drift) or rolling."
    )
    ref_since: Mapped[datetime] = mapped_column(UtcDateTime, comment="Reference window start.")
    ref_until: Mapped[datetime] = mapped_column(UtcDateTime, comment="Reference window end.")
    cur_since: Mapped[datetime] = mapped_column(UtcDateTime, comment="Current window start.")
    cur_until: Mapped[datetime] = mapped_column(UtcDateTime, comment="Current window end.")
    reason: Mapped[str | None] = mapped_column(
        sa.Text, comment="Why there is no verdict (insufficient data, empty window...)."
    )
    reference_summary: Mapped[JsonValue] = mapped_column(
        json_document(), comment="Reference window summary (mean/p50/p95 or top shares)."
    )
    current_summary: Mapped[JsonValue] = mapped_column(
        json_document(), comment="Current window summary."
    )
    top_movers: Mapped[JsonValue] = mapped_column(
        json_document(), comment="[[category or word, reference share, current share], ...]."
    )


drift_checks_table: sa.Table = DriftCheckRow.__table__  # type: ignore[assignment]
judgements_table: sa.Table = JudgementRow.__table__  # type: ignore[assignment]
baselines_table: sa.Table = BaselineRow.__table__  # type: ignore[assignment]
