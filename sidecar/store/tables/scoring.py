"""What is computed about requests after they are logged: judge scores, baselines and drift
checks."""

from __future__ import annotations

import sqlalchemy as sa

from sidecar.store.tables.base import UtcDateTime, json_document, metadata

# One judge verdict per request: claimed first, then scored (or an error recorded).
judgements_table = sa.Table(
    "judgements",
    metadata,
    sa.Column(
        "request_id",
        sa.String(32),
        sa.ForeignKey("requests.id", ondelete="CASCADE", name="fk_judgements_request_id_requests"),
        primary_key=True,
        comment="The requests.id judged (a request is judged at most once).",
    ),
    sa.Column(
        "request_started_at",
        UtcDateTime,
        nullable=False,
        comment="requests.started_at, copied so windows need no join.",
    ),
    sa.Column("model", sa.Text, comment="requests.model, copied."),
    sa.Column("adapter", sa.Text, comment="requests.adapter, copied."),
    sa.Column(
        "sample_reason",
        sa.String(32),
        nullable=False,
        comment="Why it was judged: random, floor, batch, manual (unbiased: used for quality), "
        "or schema_invalid, error, thumbs_down (hard cases).",
    ),
    sa.Column(
        "status",
        sa.String(16),
        nullable=False,
        comment="claimed (being judged), scored, error (no score), or unjudgeable.",
    ),
    sa.Column("claimed_by", sa.String(64), nullable=False, comment="The replica judging it."),
    sa.Column("claimed_at", UtcDateTime, nullable=False, comment="When it was claimed."),
    sa.Column("judged_at", UtcDateTime, comment="When the verdict (or error) was recorded."),
    sa.Column("rubric", sa.Text, comment="Rubric name."),
    sa.Column(
        "rubric_version",
        sa.String(16),
        comment="Hash of the rubric's text: scores compare only within one.",
    ),
    sa.Column("judge_model", sa.Text, comment="The judge model."),
    sa.Column(
        "score",
        sa.Double,
        comment="Overall score: weighted mean of the criteria, on the rubric's scale.",
    ),
    sa.Column(
        "score_normalized", sa.Double, comment="score mapped to 0-1 ((score - low) / (high - low))."
    ),
    sa.Column("scores", json_document(), comment='Per criterion: {"correctness": 4, ...}.'),
    sa.Column("rationale", sa.Text, comment="The judge's explanation."),
    sa.Column("latency_ms", sa.Double, comment="Judge call time, in ms."),
    sa.Column("prompt_tokens", sa.Integer, comment="Judge input tokens."),
    sa.Column("completion_tokens", sa.Integer, comment="Judge output tokens."),
    sa.Column("cost_usd", sa.Double, comment="Judge cost at the configured prices."),
    sa.Column(
        "attempts",
        sa.Integer,
        nullable=False,
        server_default="0",
        comment="Judge calls made (retries included).",
    ),
    sa.Column(
        "error",
        sa.Text,
        comment="Why there is no score (judge error, unusable reply, not judgeable).",
    ),
    sa.Index("ix_judgements_request_started_at", "request_started_at"),
    sa.Index("ix_judgements_judged_at", "judged_at"),
    sa.Index("ix_judgements_status_claimed_at", "status", "claimed_at"),
    comment="LLM-as-judge scores: one row per judged request.",
)

# A reference to compare against: judge scores (quality) or a traffic window (drift).
baselines_table = sa.Table(
    "baselines",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True, comment="Row id."),
    sa.Column("kind", sa.String(16), nullable=False, comment="quality or drift."),
    sa.Column("model", sa.Text, comment="Model it applies to."),
    sa.Column("adapter", sa.Text, comment="Adapter (NULL: base model)."),
    sa.Column("rubric", sa.Text, comment="quality: the rubric name."),
    sa.Column(
        "rubric_version", sa.String(16), comment="quality: the rubric version the scores came from."
    ),
    sa.Column("since", UtcDateTime, nullable=False, comment="Window start (inclusive)."),
    sa.Column("until", UtcDateTime, nullable=False, comment="Window end (exclusive)."),
    sa.Column("n", sa.Integer, nullable=False, comment="Samples (scores, or requests for drift)."),
    sa.Column("mean", sa.Double, comment="quality: mean score."),
    sa.Column("std", sa.Double, comment="quality: standard deviation."),
    sa.Column("ci_low", sa.Double, comment="quality: CI lower bound."),
    sa.Column("ci_high", sa.Double, comment="quality: CI upper bound."),
    sa.Column("confidence", sa.Double, comment="quality: confidence level of the interval."),
    sa.Column(
        "source",
        sa.String(16),
        nullable=False,
        comment="manual (sidecar baseline set) or auto (first N judged samples).",
    ),
    sa.Column(
        "active",
        sa.Boolean,
        nullable=False,
        comment="The one in use for its kind and scope; older ones stay for history.",
    ),
    sa.Column("created_at", UtcDateTime, nullable=False, comment="When it was set."),
    sa.Index("ix_baselines_kind_active", "kind", "active"),
    comment="Baselines per model/adapter: quality score summaries and drift windows.",
)

# One feature compared between a reference and a current window, per drift run and scope.
drift_checks_table = sa.Table(
    "drift_checks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True, comment="Row id."),
    sa.Column("run_id", sa.String(32), nullable=False, comment="Rows of one run share it."),
    sa.Column("checked_at", UtcDateTime, nullable=False, comment="When the run happened."),
    sa.Column("model", sa.Text, comment="Model compared."),
    sa.Column("adapter", sa.Text, comment="Adapter (NULL: base model)."),
    sa.Column("feature", sa.String(64), nullable=False, comment="Feature name."),
    sa.Column("kind", sa.String(16), nullable=False, comment="numerical, categorical or text."),
    sa.Column(
        "statistic",
        sa.String(32),
        nullable=False,
        comment="ks, chi2 (p-values), wasserstein, jensenshannon (distances).",
    ),
    sa.Column("value", sa.Double, comment="The statistic's value."),
    sa.Column("threshold", sa.Double, nullable=False, comment="Drift when past this."),
    sa.Column(
        "drifted",
        sa.Boolean,
        comment="The verdict; NULL when there was not enough data (see reason).",
    ),
    sa.Column(
        "psi", sa.Double, comment="Population stability index, for reference (numerical features)."
    ),
    sa.Column("n_ref", sa.Integer, nullable=False, comment="Reference samples."),
    sa.Column("n_cur", sa.Integer, nullable=False, comment="Current samples."),
    sa.Column(
        "reference",
        sa.String(16),
        nullable=False,
        comment="baseline (pinned with sidecar baseline set drift) or rolling.",
    ),
    sa.Column("ref_since", UtcDateTime, nullable=False, comment="Reference window start."),
    sa.Column("ref_until", UtcDateTime, nullable=False, comment="Reference window end."),
    sa.Column("cur_since", UtcDateTime, nullable=False, comment="Current window start."),
    sa.Column("cur_until", UtcDateTime, nullable=False, comment="Current window end."),
    sa.Column(
        "reason", sa.Text, comment="Why there is no verdict (insufficient data, empty window...)."
    ),
    sa.Column(
        "reference_summary",
        json_document(),
        comment="Reference window summary (mean/p50/p95 or top shares).",
    ),
    sa.Column("current_summary", json_document(), comment="Current window summary."),
    sa.Column(
        "top_movers",
        json_document(),
        comment="[[category or word, reference share, current share], ...].",
    ),
    sa.Index("ix_drift_checks_checked_at", "checked_at"),
    comment="Drift checks: one row per run, model/adapter and feature.",
)
