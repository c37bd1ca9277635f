"""Turn a captured :class:`Exchange` into the ``requests`` row (pure; runs in the writer)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from sidecar.logqueue.redaction import redact
from sidecar.records import Exchange, JsonValue, LoggedRequest, ModelIdentity, SchemaVerdict
from sidecar.validators.selection import Exchanged
from sidecar.wire.cut_json import cut_json_summary
from sidecar.wire.sse import reassemble, whole_events_around

IdentifyModel = Callable[[str | None], ModelIdentity]


def parse_body(raw: bytes, content_type: str | None) -> JsonValue:
    """JSON when it parses, else the text; ``None`` for an empty body."""
    if not raw:
        return None
    if content_type is None or "json" in content_type or raw[:1] in (b"{", b"["):
        try:
            parsed: JsonValue = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            return parsed
    return raw.decode("utf-8", errors="replace")


def apply_policy(
    body: JsonValue, raw_size: int, policy: str, max_bytes: int, *, cut: bool = False
) -> JsonValue:
    """``cut``: only the start and end of the body were captured (proxy.max_capture_bytes)."""
    if policy == "none" or body is None:
        return None
    if raw_size > max_bytes or cut:
        limit = "request_log.max_body_bytes" if raw_size > max_bytes else "proxy.max_capture_bytes"
        return f"<body of {raw_size} bytes not stored: over {limit}>"
    return redact(body) if policy == "redacted" else body


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def build_row(
    exchange: Exchange, identify: IdentifyModel, *, body_policy: str, max_body_bytes: int
) -> LoggedRequest:
    """The row for ``exchange`` without a schema verdict (see :func:`prepare_row`)."""
    row, _ = prepare_row(exchange, identify, body_policy=body_policy, max_body_bytes=max_body_bytes)
    return row


def with_verdict(row: LoggedRequest, verdict: SchemaVerdict | None) -> LoggedRequest:
    if verdict is None:
        return row
    return dataclasses.replace(
        row,
        schema_name=verdict.schema_name,
        schema_verdict=verdict.verdict,
        schema_error_count=verdict.error_count,
        schema_errors=[{"path": issue.path, "message": issue.message} for issue in verdict.errors],
    )


def prepare_row(
    exchange: Exchange, identify: IdentifyModel, *, body_policy: str, max_body_bytes: int
) -> tuple[LoggedRequest, Exchanged | None]:
    """The row without a verdict, and what a schema check needs (the bodies before the body
    policy; None for non-2xx answers, which are not checked)."""
    request = parse_body(exchange.request_body, exchange.request_content_type)
    requested_model = request.get("model") if isinstance(request, dict) else None
    ttft_ms: float | None = None
    gap_at = exchange.response_gap_at  # the proxy kept only the start and the end
    if exchange.stream:
        raw = exchange.response_body
        summary = reassemble(raw if gap_at is None else whole_events_around(raw, gap_at))
        response: JsonValue = summary.response
        if summary.error is not None:
            response = {**(summary.response or {}), "error": summary.error}
        usage = summary.usage
        finish_reason = summary.finish_reason
        if summary.first_token_offset is not None:
            ttft_ms = next(
                (ms for end, ms in exchange.chunk_marks if end >= summary.first_token_offset), None
            )
    else:
        response = (
            parse_body(exchange.response_body, exchange.response_content_type)
            if gap_at is None
            else cut_json_summary(exchange.response_body, gap_at)
        )
        usage = response.get("usage") if isinstance(response, dict) else None
        choices = response.get("choices") if isinstance(response, dict) else None
        first = choices[0] if isinstance(choices, list) and choices else None
        finish_reason = first.get("finish_reason") if isinstance(first, dict) else None
    response_model = response.get("model") if isinstance(response, dict) else None
    model = requested_model if isinstance(requested_model, str) else None
    if model is None and isinstance(response_model, str):
        model = response_model
    identity = identify(model)
    usage = usage if isinstance(usage, dict) else {}
    completion_id = response.get("id") if isinstance(response, dict) else None
    target = None
    if 200 <= exchange.status < 300 and gap_at is None:  # a cut output cannot be checked
        target = Exchanged(
            exchange.path,
            model,
            identity.adapter,
            request,
            response,
            finish_reason if isinstance(finish_reason, str) else None,
            exchange.schema_header,
        )
    row = LoggedRequest(
        id=exchange.id,
        client_request_id=exchange.client_request_id,
        completion_id=completion_id if isinstance(completion_id, str) else None,
        started_at=datetime.fromtimestamp(exchange.started_at, UTC),
        method=exchange.method,
        path=exchange.path,
        status=exchange.status,
        latency_ms=exchange.latency_ms,
        ttfb_ms=exchange.ttfb_ms,
        ttft_ms=ttft_ms,
        upstream_ms=exchange.upstream_ms,
        stream=exchange.stream,
        model=model,
        base_model=identity.base_model,
        adapter=identity.adapter,
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        total_tokens=_int(usage.get("total_tokens")),
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        request_body=apply_policy(request, len(exchange.request_body), body_policy, max_body_bytes),
        response_body=apply_policy(
            response,
            len(exchange.response_body)
            if exchange.response_bytes is None
            else exchange.response_bytes,
            body_policy,
            max_body_bytes,
            cut=gap_at is not None,
        ),
        error_kind=exchange.error_kind,
        error_message=exchange.error_message,
        cancelled=exchange.cancelled,
        client_key_hash=exchange.client_key_hash,
        body_policy=body_policy,
    )
    return row, target
