"""``requests``: one row per proxied request (one :class:`sidecar.records.LoggedRequest`)."""

from __future__ import annotations

import sqlalchemy as sa

from sidecar.store.tables.base import UtcDateTime, json_document, metadata

# One proxied request (one :class:`sidecar.records.LoggedRequest`).
requests_table = sa.Table(
    "requests",
    metadata,
    sa.Column(
        "id",
        sa.String(32),
        primary_key=True,
        comment="The sidecar's id for the request (the X-Request-Id response header).",
    ),
    sa.Column(
        "client_request_id",
        sa.Text,
        comment="The client's own X-Request-Id, when it sent one (forwarded upstream).",
    ),
    sa.Column(
        "completion_id",
        sa.Text,
        comment="The upstream's response id (chatcmpl-..., cmpl-...), when it gave one.",
    ),
    sa.Column(
        "started_at",
        UtcDateTime,
        nullable=False,
        comment="When the sidecar received the request (UTC).",
    ),
    sa.Column("method", sa.Text, nullable=False, comment="HTTP method."),
    sa.Column("path", sa.Text, nullable=False, comment="Request path, e.g. /v1/chat/completions."),
    sa.Column(
        "status",
        sa.Integer,
        nullable=False,
        comment="HTTP status sent to the client (499: it went away before any response).",
    ),
    sa.Column(
        "latency_ms",
        sa.Double,
        nullable=False,
        comment="Request received -> last response byte handed to the client, in ms.",
    ),
    sa.Column(
        "ttfb_ms",
        sa.Double,
        comment="Request received -> first response body byte from the upstream, in ms.",
    ),
    sa.Column(
        "ttft_ms",
        sa.Double,
        comment="Streams: request received -> first chunk carrying a token, in ms.",
    ),
    sa.Column(
        "upstream_ms",
        sa.Double,
        comment="Request sent upstream -> upstream response headers, in ms.",
    ),
    sa.Column(
        "stream",
        sa.Boolean,
        nullable=False,
        comment="True when the response was streamed (server-sent events).",
    ),
    sa.Column("model", sa.Text, comment="Model name the client asked for (or the response named)."),
    sa.Column(
        "base_model",
        sa.Text,
        comment="Base model behind it (the model itself, or the LoRA adapter's base).",
    ),
    sa.Column(
        "adapter",
        sa.Text,
        comment="LoRA adapter name, when the model is an adapter; NULL for a base model.",
    ),
    sa.Column("prompt_tokens", sa.Integer, comment="Prompt tokens, from the upstream's usage."),
    sa.Column(
        "completion_tokens", sa.Integer, comment="Completion tokens, from the upstream's usage."
    ),
    sa.Column("total_tokens", sa.Integer, comment="Total tokens, from the upstream's usage."),
    sa.Column(
        "finish_reason",
        sa.Text,
        comment="Finish reason of the first choice (stop, length, tool_calls, ...).",
    ),
    sa.Column(
        "request_body",
        json_document(),
        comment="Request body as JSON (text when not JSON), per body_policy; NULL when not kept.",
    ),
    sa.Column(
        "response_body",
        json_document(),
        comment="Response body as JSON (streams reassembled into one object), per body_policy.",
    ),
    sa.Column(
        "error_kind",
        sa.Text,
        comment="Why the request failed, when it did (upstream_timeout, ...).",
    ),
    sa.Column("error_message", sa.Text, comment="Human-readable detail for error_kind."),
    sa.Column(
        "cancelled",
        sa.Boolean,
        nullable=False,
        comment="True when the client disconnected before the response ended.",
    ),
    sa.Column(
        "client_key_hash",
        sa.Text,
        comment="Keyed hash of the client's API key (never the key itself).",
    ),
    sa.Column(
        "body_policy",
        sa.Text,
        nullable=False,
        comment="How bodies were stored: full, redacted or none.",
    ),
    sa.Column(
        "schema_name",
        sa.Text,
        comment="JSON Schema the output was checked against, when one applied.",
    ),
    sa.Column(
        "schema_verdict",
        sa.Text,
        comment="valid, invalid, unparseable, truncated or schema_error; NULL when not checked.",
    ),
    sa.Column("schema_error_count", sa.Integer, comment="Number of schema violations found."),
    sa.Column(
        "schema_errors",
        json_document(),
        comment='First few violations: [{"path": ..., "message": ...}, ...].',
    ),
    sa.Column(
        "judge_sample",
        sa.String(32),
        comment="Sampled for the judge: random or floor (the unbiased quality sample), "
        "schema_invalid or error (hard cases); NULL when not sampled.",
    ),
    sa.Column(
        "features",
        json_document(),
        comment="Drift features computed by the writer (token and character counts, system "
        "prompt hash, script, word counts...); NULL when drift is off.",
    ),
    sa.Column(
        "prompt_embedding",
        sa.LargeBinary,
        comment="Sentence vector of the last user message as stored (drift.embeddings): a "
        "format byte and 256 int8 components; NULL when off or there is no text.",
    ),
    sa.Column(
        "output_embedding",
        sa.LargeBinary,
        comment="Sentence vector of the output as stored (drift.embeddings): a format byte and "
        "256 int8 components; NULL when off or there is no text.",
    ),
    sa.Column(
        "logged_at",
        UtcDateTime,
        nullable=False,
        server_default=sa.func.now(),
        comment="When the row was written to the database (UTC).",
    ),
    sa.Index("ix_requests_started_at", "started_at"),
    sa.Index("ix_requests_model_started_at", "model", "started_at"),
    sa.Index("ix_requests_adapter_started_at", "adapter", "started_at"),
    sa.Index("ix_requests_completion_id", "completion_id"),
    sa.Index("ix_requests_client_request_id", "client_request_id"),
    sa.Index("ix_requests_judge_sample_started_at", "judge_sample", "started_at"),
    comment="One row per request proxied to the upstream model server.",
)
