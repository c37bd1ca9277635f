"""The tables, as SQLAlchemy 2 typed declarative models (rows never leave ``store/``).

The migrations in ``migrations/versions`` build the same schema; ``sidecar.store.migrate.check``
(and its test) prove the two agree. Column comments are the reference for SQL users.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sidecar.records import JsonValue

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(sa.TypeDecorator[datetime]):
    """``timestamptz`` on Postgres; UTC text on SQLite. Always hands back aware UTC datetimes.

    Values are converted to UTC before they are stored (a naive value is taken to be UTC), so
    SQLite's text timestamps sort and compare in time order, like Postgres's.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_document() -> sa.types.TypeEngine[Any]:
    """JSON on SQLite, JSONB on Postgres; Python ``None`` is SQL ``NULL`` (not JSON ``null``)."""
    return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class RequestRow(Base):
    """One proxied request (one :class:`sidecar.records.LoggedRequest`)."""

    __tablename__ = "requests"
    __table_args__ = (
        sa.Index("ix_requests_started_at", "started_at"),
        sa.Index("ix_requests_model_started_at", "model", "started_at"),
        sa.Index("ix_requests_adapter_started_at", "adapter", "started_at"),
        sa.Index("ix_requests_completion_id", "completion_id"),
        sa.Index("ix_requests_client_request_id", "client_request_id"),
        sa.Index("ix_requests_judge_sample_started_at", "judge_sample", "started_at"),
        {"comment": "One row per request proxied to the upstream model server."},
    )

    id: Mapped[str] = mapped_column(
        sa.String(32),
        primary_key=True,
        comment="The sidecar's id for the request (the X-Request-Id response header).",
    )
    client_request_id: Mapped[str | None] = mapped_column(
        sa.Text, comment="The client's own X-Request-Id, when it sent one (forwarded upstream)."
    )
    completion_id: Mapped[str | None] = mapped_column(
        sa.Text, comment="The upstream's response id (chatcmpl-..., cmpl-...), when it gave one."
    )
    started_at: Mapped[datetime] = mapped_column(
        UtcDateTime, comment="When the sidecar received the request (UTC)."
    )
    method: Mapped[str] = mapped_column(sa.Text, comment="HTTP method.")
    path: Mapped[str] = mapped_column(sa.Text, comment="Request path, e.g. /v1/chat/completions.")
    status: Mapped[int] = mapped_column(
        sa.Integer,
        comment="HTTP status sent to the client (499: it went away before any response).",
    )
    latency_ms: Mapped[float] = mapped_column(
        sa.Double, comment="Request received -> last response byte handed to the client, in ms."
    )
    ttfb_ms: Mapped[float | None] = mapped_column(
        sa.Double, comment="Request received -> first response body byte from the upstream, in ms."
    )
    ttft_ms: Mapped[float | None] = mapped_column(
        sa.Double, comment="Streams: request received -> first chunk carrying a token, in ms."
    )
    upstream_ms: Mapped[float | None] = mapped_column(
        sa.Double, comment="Request sent upstream -> upstream response headers, in ms."
    )
    stream: Mapped[bool] = mapped_column(
        sa.Boolean, comment="True when the response was streamed (server-sent events)."
    )
    model: Mapped[str | None] = mapped_column(
        sa.Text, comment="Model name the client asked for (or the response named)."
    )
    base_model: Mapped[str | None] = mapped_column(
        sa.Text, comment="Base model behind it (the model itself, or the LoRA adapter's base)."
    )
    adapter: Mapped[str | None] = mapped_column(
        sa.Text, comment="LoRA adapter name, when the model is an adapter; NULL for a base model."
    )
    prompt_tokens: Mapped[int | None] = mapped_column(
        sa.Integer, comment="Prompt tokens, from the upstream's usage."
    )
    completion_tokens: Mapped[int | None] = mapped_column(
        sa.Integer, comment="Completion tokens, from the upstream's usage."
    )
    total_tokens: Mapped[int | None] = mapped_column(
        sa.Integer, comment="Total tokens, from the upstream's usage."
    )
    finish_reason: Mapped[str | None] = mapped_column(
        sa.Text, comment="Finish reason of the first choice (stop, length, tool_calls, ...)."
    )
    request_body: Mapped[JsonValue] = mapped_column(
        json_document(),
        comment="Request body as JSON (text when not JSON), per body_policy; NULL when not kept.",
    )
    response_body: Mapped[JsonValue] = mapped_column(
        json_document(),
        comment="Response body as JSON (streams reassembled into one object), per body_policy.",
    )
    error_kind: Mapped[str | None] = mapped_column(
        sa.Text, comment="Why the request failed, when it did (upstream_timeout, ...)."
    )
    error_message: Mapped[str | None] = mapped_column(
        sa.Text, comment="Human-readable detail for error_kind."
    )
    cancelled: Mapped[bool] = mapped_column(
        sa.Boolean, comment="True when the client disconnected before the response ended."
    )
    client_key_hash: Mapped[str | None] = mapped_column(
        sa.Text, comment="Keyed hash of the client's API key (never the key itself)."
    )
    body_policy: Mapped[str] = mapped_column(
        sa.Text, comment="How bodies were stored: full, redacted or none."
    )
    schema_name: Mapped[str | None] = mapped_column(
        sa.Text, comment="JSON Schema the output was checked against, when one applied."
    )
    schema_verdict: Mapped[str | None] = mapped_column(
        sa.Text,
        comment="valid, invalid, unparseable, truncated or schema_error; NULL when not checked.",
    )
    schema_error_count: Mapped[int | None] = mapped_column(
        sa.Integer, comment="Number of schema violations found."
    )
    schema_errors: Mapped[JsonValue] = mapped_column(
        json_document(), comment='First few violations: [{"path": ..., "message": ...}, ...].'
    )
    judge_sample: Mapped[str | None] = mapped_column(
        sa.String(32),
        comment="Sampled for the judge: random or floor (the unbiased quality sample), "
        "schema_invalid or error (hard cases); NULL when not sampled.",
    )
    features: Mapped[JsonValue] = mapped_column(
        json_document(),
        comment="Drift features computed by the writer (token and character counts, system "
        "prompt hash, script, word counts...); NULL when drift is off.",
    )
    prompt_embedding: Mapped[bytes | None] = mapped_column(
        sa.LargeBinary,
        comment="Sentence vector of the last user message as stored (drift.embeddings): a "
        "format byte and 256 int8 components; NULL when off or there is no text.",
    )
    output_embedding: Mapped[bytes | None] = mapped_column(
        sa.LargeBinary,
        comment="Sentence vector of the output as stored (drift.embeddings): a format byte and "
        "256 int8 components; NULL when off or there is no text.",
    )
    logged_at: Mapped[datetime] = mapped_column(
        UtcDateTime,
        server_default=sa.func.now(),
        comment="When the row was written to the database (UTC).",
    )


class FeedbackRow(Base):
    """What an end user thought of one response (POST /sidecar/v1/feedback)."""

    __tablename__ = "feedback"
    __table_args__ = (
        sa.UniqueConstraint("request_id", "user_id", name="uq_feedback_request_id_user_id"),
        sa.Index("ix_feedback_created_at", "created_at"),
        {"comment": "End-user feedback on responses: POST /sidecar/v1/feedback."},
    )

    id: Mapped[int] = mapped_column(
        sa.Integer, primary_key=True, autoincrement=True, comment="Row id."
    )
    request_id: Mapped[str] = mapped_column(
        sa.String(32),
        sa.ForeignKey("requests.id", ondelete="CASCADE", name="fk_feedback_request_id_requests"),
        comment="The requests.id the feedback is about.",
    )
    user_id: Mapped[str] = mapped_column(
        sa.String(200),
        server_default="",
        comment="Who gave it (empty when anonymous); one row per request and user.",
    )
    rating: Mapped[str] = mapped_column(sa.String(8), comment="As given: up, down, or 1-5.")
    score: Mapped[int] = mapped_column(
        sa.Integer, comment="The rating on a 1-5 scale (up = 5, down = 1)."
    )
    satisfied: Mapped[bool] = mapped_column(
        sa.Boolean, comment="up, or a score of 4 or 5: what the satisfaction rate counts."
    )
    escalated: Mapped[bool] = mapped_column(
        sa.Boolean, server_default=sa.false(), comment="The user escalated to a human."
    )
    comment: Mapped[str | None] = mapped_column(sa.Text, comment="Free text from the user.")
    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime, comment="First time this user rated this request."
    )
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime, comment="Last change (a repeated post updates the row)."
    )
    client_key_hash: Mapped[str | None] = mapped_column(
        sa.String(16),
        comment="First 16 hex of the SHA-256 of the client key that wrote the rating (as "
        "requests.client_key_hash); only that key may change it. NULL: sent without a key.",
    )


class AlertStateRow(Base):
    """Current lifecycle state of each alert (rule x scope); survives restarts."""

    __tablename__ = "alert_state"
    __table_args__ = (
        {"comment": "Current lifecycle state of each alert (rule x scope); survives restarts."},
    )

    rule: Mapped[str] = mapped_column(sa.String(100), primary_key=True, comment="Rule name.")
    scope_key: Mapped[str] = mapped_column(
        sa.String(500), primary_key=True, comment="The scope as text, e.g. model=support."
    )
    scope: Mapped[JsonValue] = mapped_column(
        json_document(), nullable=False, comment="The scope labels as a JSON object."
    )
    status: Mapped[str] = mapped_column(sa.String(16), comment="inactive, pending or firing.")
    active_since: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="Condition true since."
    )
    fired_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="When it started firing."
    )
    last_sent_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="Last notification sent."
    )
    value: Mapped[float | None] = mapped_column(sa.Float, comment="Last value read.")
    clear_since: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="Firing, condition false since (NULL: breached at the last reading)."
    )
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime, comment="Last evaluation that changed the row."
    )


class AlertEventRow(Base):
    """Every alert transition, for SQL."""

    __tablename__ = "alert_events"
    __table_args__ = (
        sa.Index("ix_alert_events_at", "at"),
        {"comment": "Every alert transition, for SQL."},
    )

    id: Mapped[int] = mapped_column(
        sa.Integer, primary_key=True, autoincrement=True, comment="Row id."
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime, comment="When the transition happened.")
    rule: Mapped[str] = mapped_column(sa.String(100), comment="Rule name.")
    scope: Mapped[JsonValue] = mapped_column(
        json_document(), nullable=False, comment="The scope labels."
    )
    event: Mapped[str] = mapped_column(
        sa.String(16), comment="pending, firing, repeat, resolved or cleared."
    )
    value: Mapped[float | None] = mapped_column(sa.Float, comment="The value that caused it.")
    threshold: Mapped[float | None] = mapped_column(
        sa.Float, comment="The rule's threshold (NULL: the rule is no longer configured)."
    )
    severity: Mapped[str] = mapped_column(sa.String(32), comment="The rule's severity.")
    notified: Mapped[bool] = mapped_column(
        sa.Boolean, comment="A notification was queued (not silenced)."
    )


class AlertOutboxRow(Base):
    """Notifications waiting for (or done with) delivery."""

    __tablename__ = "alert_outbox"
    __table_args__ = (
        sa.Index("ix_alert_outbox_next_attempt_at", "next_attempt_at"),
        {"comment": "Notifications waiting for (or done with) delivery; retried with backoff."},
    )

    id: Mapped[int] = mapped_column(
        sa.Integer, primary_key=True, autoincrement=True, comment="Row id."
    )
    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime, comment="When the notification was queued."
    )
    notifier: Mapped[str] = mapped_column(sa.String(100), comment="Configured notifier name.")
    payload: Mapped[JsonValue] = mapped_column(
        json_document(), nullable=False, comment="The body to send."
    )
    attempts: Mapped[int] = mapped_column(
        sa.Integer, server_default="0", comment="Delivery attempts so far."
    )
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, comment="Not before this time.")
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, comment="Delivered.")
    failed_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="Given up (permanent error or too old)."
    )
    last_error: Mapped[str | None] = mapped_column(sa.Text, comment="Why the last attempt failed.")


class AlertSilenceRow(Base):
    """Silences: matching alerts keep their state but send nothing."""

    __tablename__ = "alert_silences"
    __table_args__ = ({"comment": "Silences: matching alerts keep their state but send nothing."},)

    id: Mapped[int] = mapped_column(
        sa.Integer, primary_key=True, autoincrement=True, comment="Row id."
    )
    rule: Mapped[str] = mapped_column(sa.String(100), comment="The rule silenced.")
    matchers: Mapped[JsonValue] = mapped_column(
        json_document(),
        nullable=False,
        comment="Labels that must all match the alert's scope ({} = every scope).",
    )
    until: Mapped[datetime] = mapped_column(UtcDateTime, comment="Silenced until then.")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, comment="When it was created.")
    comment: Mapped[str | None] = mapped_column(sa.Text, comment="Why.")


metadata = Base.metadata
alert_silences_table: sa.Table = AlertSilenceRow.__table__  # type: ignore[assignment]
alert_state_table: sa.Table = AlertStateRow.__table__  # type: ignore[assignment]
alert_events_table: sa.Table = AlertEventRow.__table__  # type: ignore[assignment]
alert_outbox_table: sa.Table = AlertOutboxRow.__table__  # type: ignore[assignment]
feedback_table: sa.Table = FeedbackRow.__table__  # type: ignore[assignment]
requests_table: sa.Table = RequestRow.__table__  # type: ignore[assignment]


# The scoring tables live in their own module; importing it registers them on ``metadata``.
from sidecar.store import scoring_models as _scoring_models  # noqa: E402, F401
