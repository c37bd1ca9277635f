"""Chat and completions, plain and streamed, via the sidecar in front of the real vLLM.

The openai client sees what it would see talking to vLLM directly (same choices, finish reasons,
usage only when asked for, ``system_fingerprint`` where vLLM puts it), and each call is logged
with its tokens, latency, time to first token for streams, and model.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.helpers import wait_for_rows
from tests.vllm.wire import HELLO, chunk_shapes, outline

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(300)]

MAX_TOKENS = 8


def stream_options(include_usage: bool) -> dict[str, Any]:
    return {"stream_options": {"include_usage": True}} if include_usage else {}


def test_chat_matches_a_direct_call_and_is_logged(
    direct: openai.OpenAI, proxied: openai.OpenAI, sqlite_url: str
) -> None:
    request: dict[str, Any] = {"model": "tiny", "messages": HELLO, "max_tokens": MAX_TOKENS,
                               "temperature": 0}  # fmt: skip
    want = direct.chat.completions.create(**request)
    got = proxied.chat.completions.create(**request)

    assert len(got.choices) == len(want.choices) == 1
    assert got.choices[0].finish_reason == want.choices[0].finish_reason == "length"
    assert got.choices[0].message.content == want.choices[0].message.content
    assert got.system_fingerprint == want.system_fingerprint
    assert (got.system_fingerprint or "").startswith("vllm-0.32.0-")
    assert got.usage == want.usage
    assert got.usage is not None

    row = wait_for_rows(sqlite_url, 1)[0]
    assert (row["path"], row["status"], bool(row["stream"])) == ("/v1/chat/completions", 200, False)
    assert (row["model"], row["base_model"], row["adapter"]) == ("tiny", "tiny", None)
    assert row["completion_id"] == got.id
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        got.usage.prompt_tokens, MAX_TOKENS, got.usage.total_tokens,
    )  # fmt: skip
    assert row["finish_reason"] == "length"
    assert row["latency_ms"] > 0
    assert row["ttft_ms"] is None
    assert (
        row["response_body"]["choices"][0]["message"]["content"] == got.choices[0].message.content
    )


@pytest.mark.parametrize("include_usage", [False, True], ids=["no-usage", "include-usage"])
def test_chat_stream_matches_a_direct_stream_and_is_logged(
    direct: openai.OpenAI, proxied: openai.OpenAI, sqlite_url: str, include_usage: bool
) -> None:
    request: dict[str, Any] = {"model": "tiny", "messages": HELLO, "max_tokens": MAX_TOKENS,
                               "temperature": 0, "stream": True, **stream_options(include_usage)}  # fmt: skip
    want = list(direct.chat.completions.create(**request))
    got = list(proxied.chat.completions.create(**request))

    assert outline(chunk_shapes(got)) == outline(chunk_shapes(want))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in got if chunk.choices)
    assert text == "".join(chunk.choices[0].delta.content or "" for chunk in want if chunk.choices)
    assert got[0].choices[0].delta.role == "assistant"
    with_usage = [chunk for chunk in got if chunk.usage is not None]
    if include_usage:
        assert with_usage == [got[-1]]
        assert got[-1].choices == []
        assert got[-1].usage is not None
        assert got[-1].usage.completion_tokens == MAX_TOKENS
        assert (got[-1].system_fingerprint or "").startswith("vllm-0.32.0-")
    else:
        assert with_usage == []
        assert got[-1].choices[0].finish_reason == "length"
        assert (got[-1].system_fingerprint or "").startswith("vllm-0.32.0-")

    row = wait_for_rows(sqlite_url, 1)[0]
    assert (row["status"], bool(row["stream"]), row["model"]) == (200, True, "tiny")
    assert (row["base_model"], row["adapter"]) == ("tiny", None)
    assert row["completion_id"] == got[0].id
    # Logged with tokens even when the client did not ask for the usage chunk.
    assert row["completion_tokens"] == MAX_TOKENS
    assert row["prompt_tokens"] > 0
    assert row["total_tokens"] == row["prompt_tokens"] + MAX_TOKENS
    assert row["finish_reason"] == "length"
    assert row["ttft_ms"] is not None
    assert 0 < row["ttft_ms"] <= row["latency_ms"]
    assert row["response_body"]["choices"][0]["message"]["content"] == text


def test_completion_matches_a_direct_call_and_is_logged(
    direct: openai.OpenAI, proxied: openai.OpenAI, sqlite_url: str
) -> None:
    request: dict[str, Any] = {"model": "legal", "prompt": "say hi", "max_tokens": MAX_TOKENS,
                               "temperature": 0}  # fmt: skip
    want = direct.completions.create(**request)
    got = proxied.completions.create(**request)

    assert len(got.choices) == len(want.choices) == 1
    assert got.choices[0].finish_reason == want.choices[0].finish_reason
    assert got.choices[0].text == want.choices[0].text
    assert got.system_fingerprint == want.system_fingerprint
    assert got.usage == want.usage
    assert got.usage is not None

    row = wait_for_rows(sqlite_url, 1)[0]
    assert (row["path"], row["status"], bool(row["stream"])) == ("/v1/completions", 200, False)
    assert (row["model"], row["base_model"], row["adapter"]) == ("legal", "tiny", "legal")
    assert row["completion_id"] == got.id
    assert (row["prompt_tokens"], row["completion_tokens"]) == (got.usage.prompt_tokens, MAX_TOKENS)
    assert row["latency_ms"] > 0
    assert row["response_body"]["choices"][0]["text"] == got.choices[0].text


@pytest.mark.parametrize("include_usage", [False, True], ids=["no-usage", "include-usage"])
def test_completion_stream_matches_a_direct_stream_and_is_logged(
    direct: openai.OpenAI, proxied: openai.OpenAI, sqlite_url: str, include_usage: bool
) -> None:
    request: dict[str, Any] = {"model": "tiny", "prompt": "say hi", "max_tokens": MAX_TOKENS,
                               "temperature": 0, "stream": True, **stream_options(include_usage)}  # fmt: skip
    want = list(direct.completions.create(**request))
    got = list(proxied.completions.create(**request))

    assert outline(chunk_shapes(got)) == outline(chunk_shapes(want))
    text = "".join(chunk.choices[0].text for chunk in got if chunk.choices)
    assert text == "".join(chunk.choices[0].text for chunk in want if chunk.choices)
    assert any(chunk.usage is not None for chunk in got) is include_usage

    row = wait_for_rows(sqlite_url, 1)[0]
    assert (row["path"], row["status"], bool(row["stream"])) == ("/v1/completions", 200, True)
    assert (row["model"], row["base_model"], row["adapter"]) == ("tiny", "tiny", None)
    assert row["completion_tokens"] == MAX_TOKENS
    assert row["prompt_tokens"] > 0
    assert row["finish_reason"] == "length"
    assert row["ttft_ms"] is not None
    assert 0 < row["ttft_ms"] <= row["latency_ms"]
    assert row["response_body"]["choices"][0]["text"] == text
