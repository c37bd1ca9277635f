"""Records as the stages make them, for tests: realistic defaults, any field overridden.

``logged_request()`` is a stored non-streamed chat completion row (a LoRA adapter, a schema
verdict, a client key); ``exchange()`` is what the proxy hands the log queue for a small chat
request. Tests say only what matters to them: ``logged_request(status=500, latency_ms=900.0)``.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from sidecar.records import Exchange, LoggedRequest

STARTED = datetime(2025, 5, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))


def logged_request(**changes: Any) -> LoggedRequest:
    """A realistic non-streamed chat completion row; ``changes`` override fields."""
    row = LoggedRequest(
        id=secrets.token_hex(16),
        client_request_id="client-7",
        completion_id=f"chatcmpl-{secrets.token_hex(8)}",
        started_at=STARTED,
        method="POST",
        path="/v1/chat/completions",
        status=200,
        latency_ms=182.5,
        ttfb_ms=40.25,
        ttft_ms=None,
        upstream_ms=12.0,
        stream=False,
        model="support-lora",
        base_model="tiny",
        adapter="support-lora",
        prompt_tokens=120,
        completion_tokens=48,
        total_tokens=168,
        finish_reason="stop",
        request_body={
            "model": "support-lora",
            "messages": [{"role": "user", "content": "Ticket: printer on fire ✓ café"}],
            "temperature": 0.2,
        },
        response_body={
            "id": "chatcmpl-1",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": '{"priority": "high"}'}}
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 48, "total_tokens": 168},
        },
        error_kind=None,
        error_message=None,
        cancelled=False,
        client_key_hash="9f" * 16,
        body_policy="full",
        schema_name="support_triage",
        schema_verdict="valid",
        schema_error_count=0,
        schema_errors=[],
    )
    return dataclasses.replace(row, **changes)


def exchange(**fields: object) -> Exchange:
    """A small non-streamed chat exchange as the proxy captures it; ``fields`` override."""
    base: dict[str, object] = {
        "id": "0" * 32, "client_request_id": None, "started_at": 1_700_000_000.0,
        "method": "POST", "path": "/v1/chat/completions", "query": "", "status": 200,
        "latency_ms": 12.0, "ttfb_ms": 10.0, "upstream_ms": 9.0,
        "request_content_type": "application/json",
        "request_body": orjson.dumps({"model": "support", "messages": []}),
        "response_content_type": "application/json", "response_body": b"", "stream": False,
    }  # fmt: skip
    base.update(fields)
    return Exchange(**base)  # type: ignore[arg-type]
