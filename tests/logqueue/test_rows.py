"""From a captured Exchange to the ``requests`` row (pure)."""

from __future__ import annotations

import orjson

from sidecar.logqueue.rows import build_row
from sidecar.proxy.catalog import ModelCatalog
from sidecar.records import Exchange
from sidecar.testing.factories import exchange

CATALOG = ModelCatalog()
CATALOG.update({"data": [{"id": "tiny", "parent": None}, {"id": "support", "parent": "tiny"}]})


def build(ex: Exchange, policy: str = "full", max_body_bytes: int = 1 << 20):  # type: ignore[no-untyped-def]
    return build_row(ex, CATALOG.identify, body_policy=policy, max_body_bytes=max_body_bytes)


RESPONSE = orjson.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "model": "support",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi a@b.co"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "total_tokens": 5, "completion_tokens": 2},
})  # fmt: skip


def test_non_stream_row_has_tokens_finish_reason_adapter_and_completion_id() -> None:
    row = build(exchange(response_body=RESPONSE))
    assert (row.model, row.base_model, row.adapter) == ("support", "tiny", "support")
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (3, 2, 5)
    assert row.finish_reason == "stop"
    assert row.completion_id == "chatcmpl-1"
    assert row.started_at.isoformat() == "2023-11-14T22:13:20+00:00"


def test_stream_row_gets_ttft_from_the_first_chunk_with_output() -> None:
    role = b'data: {"id":"c","object":"chat.completion.chunk","model":"tiny","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
    token = b'data: {"id":"c","object":"chat.completion.chunk","model":"tiny","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"length"}]}\n\n'
    usage = b'data: {"id":"c","object":"chat.completion.chunk","model":"tiny","choices":[],"usage":{"prompt_tokens":1,"total_tokens":2,"completion_tokens":1}}\n\n'
    raw = role + token + usage + b"data: [DONE]\n\n"
    marks = ((len(role), 5.0), (len(role + token), 7.5), (len(raw), 8.0))
    row = build(exchange(stream=True, response_body=raw, chunk_marks=marks,
                         request_body=b'{"model":"tiny","stream":true}'))  # fmt: skip
    assert row.ttft_ms == 7.5
    assert row.response_body["choices"][0]["message"]["content"] == "x"
    assert (row.completion_tokens, row.finish_reason) == (1, "length")
    assert (row.base_model, row.adapter) == ("tiny", None)


def test_body_policies() -> None:
    ex = exchange(response_body=RESPONSE)
    assert build(ex, "none").request_body is None
    assert build(ex, "none").response_body is None
    redacted = build(ex, "redacted").response_body
    assert redacted["choices"][0]["message"]["content"] == "hi [EMAIL]"
    assert build(ex, "full", max_body_bytes=10).response_body == (
        f"<body of {len(RESPONSE)} bytes not stored: over request_log.max_body_bytes>"
    )


def test_non_json_bodies_are_kept_as_text_and_unknown_models_stay_unresolved() -> None:
    row = build(exchange(request_body=b"not json", request_content_type="text/plain",
                         response_body=b"Success: LoRA adapter 'x' added successfully.",
                         response_content_type=None))  # fmt: skip
    assert row.request_body == "not json"
    assert row.response_body == "Success: LoRA adapter 'x' added successfully."
    assert (row.model, row.base_model, row.adapter) == (None, None, None)
