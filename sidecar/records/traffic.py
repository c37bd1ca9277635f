"""Typed records that cross stages: the proxy's capture, the writer's row.

Stages meet only through these frozen dataclasses and the store. The proxy
produces an :class:`Exchange` (raw bytes, no parsing beyond what routing needs),
the log queue carries it durably, and the writer turns it into a
:class:`LoggedRequest` for the store.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeAlias

JsonValue: TypeAlias = dict[str, Any] | list[Any] | str | int | float | bool | None


class ErrorKind(StrEnum):
    """Values of ``Exchange.error_kind`` / ``requests.error_kind`` (a closed set, kept as text)."""

    UPSTREAM_UNREACHABLE = "upstream_unreachable"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_RESET = "upstream_reset"
    UPSTREAM_ERROR = "upstream_error"  # the upstream answered with a 5xx
    UPSTREAM_BUSY = "upstream_busy"  # no upstream connection slot freed in time (503)
    CLIENT_TOO_SLOW = "client_too_slow"  # the client stopped reading (proxy.write_timeout_s)
    CLIENT_DISCONNECTED = "client_disconnected"
    REQUEST_TOO_LARGE = "request_too_large"
    BAD_REQUEST = "bad_request"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One proxied request and its response, exactly as seen on the wire.

    ``response_body`` holds the bytes received from the upstream: for streams
    that is the raw SSE text, including a usage chunk the sidecar asked for and
    hid from the client (``usage_injected``). Parsing happens in the writer.
    """

    id: str
    client_request_id: str | None
    started_at: float  # Unix time, seconds
    method: str
    path: str
    query: str
    status: int
    latency_ms: float  # request received -> last response byte handed to the client
    ttfb_ms: float | None  # request received -> first response body byte from the upstream
    upstream_ms: float | None  # request sent upstream -> upstream response headers
    request_content_type: str | None
    request_body: bytes
    response_content_type: str | None
    response_body: bytes
    stream: bool
    usage_injected: bool = False
    error_kind: str | None = None
    error_message: str | None = None
    cancelled: bool = False
    client_key_hash: str | None = None
    capture_truncated: bool = False
    # (byte offset just past the chunk in response_body, ms since the request arrived), per chunk
    chunk_marks: tuple[tuple[int, float], ...] = ()
    schema_header: str | None = None  # the client's X-Sidecar-Schema
    # The response's real size. Past request_log.max_body_bytes only the first bytes and the
    # last few KiB are kept (response_body = head + tail); response_gap_at is where the
    # dropped middle was (None: response_body is the whole response).
    response_bytes: int | None = None
    response_gap_at: int | None = None


class Verdict(StrEnum):
    """Values of ``requests.schema_verdict``."""

    VALID = "valid"
    INVALID = "invalid"
    UNPARSEABLE = "unparseable"
    TRUNCATED = "truncated"
    SCHEMA_ERROR = "schema_error"
    CHECK_TIMEOUT = "check_timeout"  # the check did not finish (docs/compliance.md)


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    path: str  # JSON pointer into the output ("tool_calls[0] name:" prefixed for tool arguments)
    message: str


@dataclass(frozen=True, slots=True)
class SchemaVerdict:
    schema_name: str
    verdict: Verdict
    error_count: int
    errors: tuple[SchemaIssue, ...]


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One row of the ``requests`` table, built by the writer from an :class:`Exchange`."""

    id: str
    client_request_id: str | None
    completion_id: str | None
    started_at: datetime
    method: str
    path: str
    status: int
    latency_ms: float
    ttfb_ms: float | None
    ttft_ms: float | None
    upstream_ms: float | None
    stream: bool
    model: str | None
    base_model: str | None
    adapter: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    finish_reason: str | None
    request_body: JsonValue
    response_body: JsonValue
    error_kind: str | None
    error_message: str | None
    cancelled: bool
    client_key_hash: str | None
    body_policy: str
    schema_name: str | None = None
    schema_verdict: str | None = None
    schema_error_count: int | None = None
    schema_errors: JsonValue = None  # [{"path": JSON pointer, "message": ...}, ...] (first few)
    judge_sample: str | None = None  # sidecar.judge.sampling.SampleReason, when sampled
    features: JsonValue = None  # sidecar.drift.RequestFeatures.as_json(), for drift checks
    prompt_embedding: bytes | None = None  # sidecar.drift.embeddings.pack(), drift.embeddings
    output_embedding: bytes | None = None

    def as_row(self) -> dict[str, Any]:
        """Column name -> value, for the store's insert."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class Feedback:
    """One user's rating of one response (the ``feedback`` table)."""

    request_id: str
    user_id: str
    rating: str  # "up", "down" or "1".."5", as given
    score: int  # 1-5 (up = 5, down = 1)
    satisfied: bool  # up, or a score of 4 or 5
    escalated: bool
    comment: str | None
    created_at: datetime
    updated_at: datetime
    client_key_hash: str | None = None  # the key that wrote it (owns it); None: sent without one


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    base_model: str | None
    adapter: str | None
