"""Per-request drift features from logged rows, and the comparison of two windows of them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.drift.features import (
    CATEGORICAL_FEATURES,
    NUMERICAL_FEATURES,
    TEXT_FEATURES,
    RequestFeatures,
    compare_windows,
    dataset_drift,
    extract_features,
)
from sidecar.records import JsonValue, LoggedRequest

SYSTEM = "You are a support triage assistant. Answer in JSON."
CHAT_REQUEST = {
    "model": "support",
    "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Refund my invoice, the invoice was charged twice"},
    ],
}
CHAT_RESPONSE = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": '{"category": "billing"}'},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 41, "completion_tokens": 7, "total_tokens": 48},
}

BODY_KEYS = [
    "messages",
    "prompt",
    "choices",
    "message",
    "content",
    "role",
    "text",
    "tool_calls",
    "type",
    "user",
    "system",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(BODY_KEYS) | st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


def logged(
    request_body: JsonValue = None, response_body: JsonValue = None, **fields: Any
) -> LoggedRequest:
    values: dict[str, Any] = {
        "id": "req-1",
        "client_request_id": None,
        "completion_id": None,
        "started_at": datetime(2026, 1, 5, tzinfo=UTC),
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 200,
        "latency_ms": 230.5,
        "ttfb_ms": None,
        "ttft_ms": None,
        "upstream_ms": None,
        "stream": False,
        "model": "support",
        "base_model": None,
        "adapter": None,
        "prompt_tokens": 41,
        "completion_tokens": 7,
        "total_tokens": 48,
        "finish_reason": "stop",
        "request_body": request_body,
        "response_body": response_body,
        "error_kind": None,
        "error_message": None,
        "cancelled": False,
        "client_key_hash": None,
        "body_policy": "full",
    }
    return LoggedRequest(**values | fields)


def test_chat_request_and_response() -> None:
    features = extract_features(logged(CHAT_REQUEST, CHAT_RESPONSE, schema_verdict="valid"))
    user = "Refund my invoice, the invoice was charged twice"
    assert features == RequestFeatures(
        prompt_tokens=41,
        completion_tokens=7,
        prompt_chars=len(SYSTEM) + len("Hi") + len("Hello! How can I help?") + len(user),
        completion_chars=len('{"category": "billing"}'),
        message_count=4,
        system_prompt_hash=hashlib.sha256(SYSTEM.encode()).hexdigest()[:12],
        latency_ms=230.5,
        ttft_ms=None,
        finish_reason="stop",
        schema_verdict="valid",
        tool_calls_used=False,
        script="latin",
        user_words={
            "refund": 1,
            "my": 1,
            "invoice": 2,
            "the": 1,
            "was": 1,
            "charged": 1,
            "twice": 1,
        },
    )


def test_list_of_parts_content_counts_its_text_parts() -> None:
    request = {
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {"type": "text", "text": "this picture?"},
                ],
            },
        ]
    }
    features = extract_features(logged(request, None))
    assert features.prompt_chars == len("Be brief.") + len("What is in\nthis picture?")
    assert features.system_prompt_hash == hashlib.sha256(b"Be brief.").hexdigest()[:12]
    assert features.user_words == {"what": 1, "is": 1, "in": 1, "this": 1, "picture": 1}
    assert features.completion_chars is None


def test_tool_calls_are_seen_in_the_response_or_the_finish_reason() -> None:
    response = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": "{}"},
                        }
                    ],
                }
            }
        ]
    }
    with_calls = extract_features(logged(CHAT_REQUEST, response, finish_reason="tool_calls"))
    assert (with_calls.tool_calls_used, with_calls.completion_chars) == (True, 0)
    no_body = extract_features(logged(None, None, finish_reason="tool_calls"))
    assert no_body.tool_calls_used is True
    assert extract_features(logged(CHAT_REQUEST, CHAT_RESPONSE)).tool_calls_used is False


def test_completions_prompt_string_list_and_token_ids() -> None:
    response = {"choices": [{"index": 0, "text": " world", "finish_reason": "length"}]}
    single = extract_features(logged({"prompt": "Привет, мир"}, response))
    assert (single.prompt_chars, single.message_count, single.system_prompt_hash) == (
        11,
        None,
        None,
    )
    assert (single.script, single.completion_chars) == ("cyrillic", 6)
    batch = extract_features(logged({"prompt": ["first one", "你好世界"]}, response))
    assert (batch.prompt_chars, batch.script) == (len("first one") + 4, "cjk")
    assert batch.user_words == {"你": 1, "好": 1, "世": 1, "界": 1}
    token_ids = extract_features(logged({"prompt": [1, 2, 3]}, response))
    assert (token_ids.prompt_chars, token_ids.script, token_ids.user_words) == (None, None, {})


def test_bodies_that_were_not_stored_leave_text_features_empty() -> None:
    features = extract_features(logged(None, None, prompt_tokens=None, ttft_ms=12.5))
    assert features.prompt_tokens is None
    assert features.ttft_ms == 12.5
    assert (features.prompt_chars, features.completion_chars, features.message_count) == (
        None,
        None,
        None,
    )
    assert (features.system_prompt_hash, features.script, features.user_words) == (None, None, {})
    too_large = extract_features(logged("<body of 9000000 bytes not stored>", "oops"))
    assert (too_large.prompt_chars, too_large.script) == (None, None)


def test_a_chat_without_a_user_message_has_an_empty_script() -> None:
    features = extract_features(logged({"messages": [{"role": "system", "content": "x"}]}))
    assert (features.script, features.user_words, features.message_count) == ("empty", {}, 1)


@pytest.mark.parametrize(
    "body",
    [
        {"messages": "not a list"},
        {"messages": [None, 3, {"role": "user", "content": {"weird": True}}]},
        {"messages": [{"role": "user", "content": [None, 5, {"text": 7}, "plain part"]}]},
        {"prompt": {"nested": "dict"}},
        {"choices": "nope"},
        [1, 2, 3],
        42,
        True,
    ],
)
def test_garbage_bodies_do_not_raise(body: JsonValue) -> None:
    features = extract_features(logged(body, body, latency_ms=float("nan")))
    assert features.latency_ms is None
    RequestFeatures.from_json(json.loads(json.dumps(features.as_json())))


class Hostile(dict[str, Any]):
    """A body whose every lookup fails, standing in for a shape nobody foresaw."""

    def get(self, *args: object) -> Any:
        raise RuntimeError("unreadable")


def test_a_body_that_fails_to_read_still_gives_the_row_level_features() -> None:
    features = extract_features(logged(Hostile(), CHAT_RESPONSE, finish_reason="length"))
    assert (features.prompt_tokens, features.latency_ms, features.finish_reason) == (
        41,
        230.5,
        "length",
    )
    assert (features.prompt_chars, features.completion_chars, features.script) == (None, None, None)


@settings(max_examples=100, deadline=None)
@given(json_values, json_values)
def test_any_json_bodies_give_features(request_body: JsonValue, response_body: JsonValue) -> None:
    features = extract_features(logged(request_body, response_body))
    assert features.prompt_tokens == 41
    json.dumps(features.as_json())


def test_features_round_trip_through_json() -> None:
    features = extract_features(logged(CHAT_REQUEST, CHAT_RESPONSE, ttft_ms=88.0))
    stored = json.loads(json.dumps(features.as_json()))
    assert RequestFeatures.from_json(stored) == features
    assert stored["version"] == 1


def test_reading_stored_features_tolerates_missing_and_mistyped_values() -> None:
    loaded = RequestFeatures.from_json(
        {
            "prompt_tokens": "12",
            "latency_ms": 5,
            "tool_calls_used": 1,
            "user_words": {"a": 2, "b": "x"},
            "future_field": [1],
        }
    )
    assert (loaded.prompt_tokens, loaded.latency_ms, loaded.tool_calls_used) == (None, 5.0, False)
    assert (loaded.user_words, loaded.version, loaded.script) == ({"a": 2}, 0, None)


# --- comparing windows ---------------------------------------------------------------------


def window(seed: int, n: int, new_template_share: float = 0.0) -> list[RequestFeatures]:
    rng = np.random.default_rng(seed)
    base = extract_features(logged(CHAT_REQUEST, CHAT_RESPONSE))
    return [
        dataclasses.replace(
            base,
            prompt_tokens=int(rng.lognormal(6, 0.5)),
            latency_ms=float(rng.gamma(4, 50)),
            system_prompt_hash="new0template" if rng.random() < new_template_share else "old",
        )
        for _ in range(n)
    ]


def test_compare_windows_reports_every_feature_in_catalogue_order() -> None:
    results = compare_windows(window(1, 200), window(2, 200))
    assert [r.feature for r in results] == [
        *NUMERICAL_FEATURES,
        *CATEGORICAL_FEATURES,
        *TEXT_FEATURES,
    ]
    assert [r.kind for r in results] == (["numerical"] * 7 + ["categorical"] * 5 + ["text"])
    by_name = {result.feature: result for result in results}
    assert by_name["prompt_tokens"].statistic == "ks"
    assert by_name["ttft_ms"].reason == "both windows are empty"  # not streamed: no TTFT
    assert by_name["completion_chars"].reason == "constant feature in both windows"
    assert dataset_drift(results).drifted is False


def test_a_template_change_shows_in_the_system_prompt_hash() -> None:
    results = compare_windows(window(3, 300), window(4, 300, new_template_share=0.3))
    drifted = {result.feature for result in results if result.drifted}
    assert drifted == {"system_prompt_hash"}
    template = next(r for r in results if r.feature == "system_prompt_hash")
    assert template.top_movers[0][0] == "new0template"
