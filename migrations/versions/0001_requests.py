"""The requests table: one row per proxied request, indexed for time-window queries.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def json_document() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column(
            "id",
            sa.String(length=32),
            nullable=False,
            comment="The sidecar's id for the request (the X-Request-Id response header).",
        ),
        sa.Column(
            "client_request_id",
            sa.Text(),
            nullable=True,
            comment="The client's own X-Request-Id, when it sent one (forwarded upstream).",
        ),
        sa.Column(
            "completion_id",
            sa.Text(),
            nullable=True,
            comment="The upstream's response id (chatcmpl-..., cmpl-...), when it gave one.",
        ),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="When the sidecar received the request (UTC).",
        ),
        sa.Column("method", sa.Text(), nullable=False, comment="HTTP method."),
        sa.Column(
            "path", sa.Text(), nullable=False, comment="Request path, e.g. /v1/chat/completions."
        ),
        sa.Column(
            "status",
            sa.Integer(),
            nullable=False,
            comment="HTTP status sent to the client (499: it went away before any response).",
        ),
        sa.Column(
            "latency_ms",
            sa.Double(),
            nullable=False,
            comment="Request received -> last response byte handed to the client, in ms.",
        ),
        sa.Column(
            "ttfb_ms",
            sa.Double(),
            nullable=True,
            comment="Request received -> first response body byte from the upstream, in ms.",
        ),
        sa.Column(
            "ttft_ms",
            sa.Double(),
            nullable=True,
            comment="Streams: request received -> first chunk carrying a token, in ms.",
        ),
        sa.Column(
            "upstream_ms",
            sa.Double(),
            nullable=True,
            comment="Request sent upstream -> upstream response headers, in ms.",
        ),
        sa.Column(
            "stream",
            sa.Boolean(),
            nullable=False,
            comment="True when the response was streamed (server-sent events).",
        ),
        sa.Column(
            "model",
            sa.Text(),
            nullable=True,
            comment="Model name the client asked for (or the response named).",
        ),
        sa.Column(
            "base_model",
            sa.Text(),
            nullable=True,
            comment="Base model behind it (the model itself, or the LoRA adapter's base).",
        ),
        sa.Column(
            "adapter",
            sa.Text(),
            nullable=True,
            comment="LoRA adapter name, when the model is an adapter; NULL for a base model.",
        ),
        sa.Column(
            "prompt_tokens",
            sa.Integer(),
            nullable=True,
            comment="Prompt tokens, from the upstream's usage.",
        ),
        sa.Column(
            "completion_tokens",
            sa.Integer(),
            nullable=True,
            comment="Completion tokens, from the upstream's usage.",
        ),
        sa.Column(
            "total_tokens",
            sa.Integer(),
            nullable=True,
            comment="Total tokens, from the upstream's usage.",
        ),
        sa.Column(
            "finish_reason",
            sa.Text(),
            nullable=True,
            comment="Finish reason of the first choice (stop, length, tool_calls, ...).",
        ),
        sa.Column(
            "request_body",
            json_document(),
            nullable=True,
            comment="Request body as JSON (text when not JSON), per body_policy; NULL when not kept.",
        ),
        sa.Column(
            "response_body",
            json_document(),
            nullable=True,
            comment="Response body as JSON (streams reassembled into one object), per body_policy.",
        ),
        sa.Column(
            "error_kind",
            sa.Text(),
            nullable=True,
            comment="Why the request failed, when it did (upstream_timeout, ...).",
        ),
        sa.Column(
            "error_message",
            sa.Text(),
            nullable=True,
            comment="Human-readable detail for error_kind.",
        ),
        sa.Column(
            "cancelled",
            sa.Boolean(),
            nullable=False,
            comment="True when the client disconnected before the response ended.",
        ),
        sa.Column(
            "client_key_hash",
            sa.Text(),
            nullable=True,
            comment="Keyed hash of the client's API key (never the key itself).",
        ),
        sa.Column(
            "body_policy",
            sa.Text(),
            nullable=False,
            comment="How bodies were stored: full, redacted or none.",
        ),
        sa.Column(
            "schema_name",
            sa.Text(),
            nullable=True,
            comment="JSON Schema the output was checked against, when one applied.",
        ),
        sa.Column(
            "schema_verdict",
            sa.Text(),
            nullable=True,
            comment="valid, invalid, unparseable, truncated or schema_error; NULL when not checked.",
        ),
        sa.Column(
            "schema_error_count",
            sa.Integer(),
            nullable=True,
            comment="Number of schema violations found.",
        ),
        sa.Column(
            "schema_errors",
            json_document(),
            nullable=True,
            comment='First few violations: [{"path": ..., "message": ...}, ...].',
        ),
        sa.Column(
            "logged_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
            comment="When the row was written to the database (UTC).",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
        comment="One row per request proxied to the upstream model server.",
    )
    op.create_index(
        "ix_requests_adapter_started_at", "requests", ["adapter", "started_at"], unique=False
    )
    op.create_index(
        "ix_requests_client_request_id", "requests", ["client_request_id"], unique=False
    )
    op.create_index("ix_requests_completion_id", "requests", ["completion_id"], unique=False)
    op.create_index(
        "ix_requests_model_started_at", "requests", ["model", "started_at"], unique=False
    )
    op.create_index("ix_requests_started_at", "requests", ["started_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_requests_started_at", table_name="requests")
    op.drop_index("ix_requests_model_started_at", table_name="requests")
    op.drop_index("ix_requests_completion_id", table_name="requests")
    op.drop_index("ix_requests_client_request_id", table_name="requests")
    op.drop_index("ix_requests_adapter_started_at", table_name="requests")
    op.drop_table("requests")
