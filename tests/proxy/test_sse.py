"""The usage-chunk filter and stream reassembly, on vLLM's captured wire format."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from sidecar.proxy.sse import UsageChunkFilter, reassemble, split_done

ID = "chatcmpl-8822413e18d14b47"
FP = "vllm-0.32.0-6c26e6e8"


def chunk(body: dict[str, object]) -> bytes:
    return b"data: " + orjson.dumps(body) + b"\n\n"


def role() -> bytes:
    return chunk({"id": ID, "object": "chat.completion.chunk", "created": 1, "model": "tiny",
                  "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                               "logprobs": None, "finish_reason": None}],
                  "prompt_token_ids": None, "prompt_text": None})  # fmt: skip


def token(text: str) -> bytes:
    return chunk({"id": ID, "object": "chat.completion.chunk", "created": 1, "model": "tiny",
                  "choices": [{"index": 0, "delta": {"content": text}, "logprobs": None,
                               "finish_reason": None, "token_ids": None}]})  # fmt: skip


def finish(text: str, *, fingerprint: bool) -> bytes:
    body: dict[str, object] = {
        "id": ID, "object": "chat.completion.chunk", "created": 1, "model": "tiny",
        "choices": [{"index": 0, "delta": {"content": text}, "logprobs": None,
                     "finish_reason": "length", "stop_reason": None, "token_ids": None}],
    }  # fmt: skip
    if fingerprint:
        body["system_fingerprint"] = FP
    return chunk(body)


def usage() -> bytes:
    return chunk({"id": ID, "object": "chat.completion.chunk", "created": 1, "model": "tiny",
                  "choices": [], "usage": {"prompt_tokens": 10, "total_tokens": 13,
                                           "completion_tokens": 3},
                  "system_fingerprint": FP})  # fmt: skip


DONE = b"data: [DONE]\n\n"
# What vLLM sends with include_usage on, and what it would have sent without it.
WITH_USAGE = [
    role(),
    token("style"),
    token("FILE"),
    finish("FILE", fingerprint=False),
    usage(),
    DONE,
]
WITHOUT_USAGE = [role(), token("style"), token("FILE"), finish("FILE", fingerprint=True), DONE]


def run_filter(pieces: list[bytes]) -> bytes:
    hide = UsageChunkFilter()
    return b"".join(hide.feed(piece) for piece in pieces) + hide.flush()


def test_filter_restores_the_stream_vllm_sends_without_include_usage() -> None:
    assert run_filter(WITH_USAGE) == b"".join(WITHOUT_USAGE)


def test_filter_passes_token_chunks_through_untouched_and_at_once() -> None:
    hide = UsageChunkFilter()
    assert hide.feed(role()) == role()
    assert hide.feed(token("a")) == token("a")


@given(st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_filter_output_does_not_depend_on_how_tcp_split_the_bytes(cuts: list[int]) -> None:
    raw = b"".join(WITH_USAGE)
    points = sorted({min(cut, len(raw)) for cut in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    assert run_filter(pieces) == b"".join(WITHOUT_USAGE)


def test_filter_keeps_a_finish_chunk_when_no_usage_chunk_follows() -> None:
    events = [role(), finish("x", fingerprint=True), DONE]
    assert run_filter(events) == b"".join(events)


def test_split_done_holds_back_only_a_trailing_done_event() -> None:
    assert split_done(token("a") + DONE) == (token("a"), DONE)
    assert split_done(token("a")) == (token("a"), b"")


def test_reassemble_rebuilds_text_usage_finish_reason_and_first_token_offset() -> None:
    raw = b"".join(WITH_USAGE)
    summary = reassemble(raw)
    assert summary.response is not None
    assert summary.response["choices"][0]["message"] == {
        "role": "assistant",
        "content": "styleFILEFILE",
    }
    assert summary.response["id"] == ID
    assert summary.usage == {"prompt_tokens": 10, "total_tokens": 13, "completion_tokens": 3}
    assert summary.finish_reason == "length"
    assert summary.done
    assert summary.first_token_offset == len(role()) + len(token("style"))


def test_reassemble_joins_tool_call_argument_deltas() -> None:
    def tool(delta: dict[str, object], finish_reason: str | None = None) -> bytes:
        return chunk({"id": ID, "object": "chat.completion.chunk", "created": 1, "model": "tiny",
                      "choices": [{"index": 0, "delta": {"tool_calls": [delta]},
                                   "finish_reason": finish_reason}]})  # fmt: skip

    raw = role() + tool({"index": 0, "id": "call_1", "type": "function",
                         "function": {"name": "triage", "arguments": '{"prio'}}) + tool(
        {"index": 0, "function": {"arguments": 'rity": 2}'}}, "tool_calls") + DONE  # fmt: skip
    message = reassemble(raw).response["choices"][0]["message"]  # type: ignore[index]
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function",
         "function": {"name": "triage", "arguments": '{"priority": 2}'}}
    ]  # fmt: skip


def test_reassemble_records_a_mid_stream_error_event() -> None:
    error = b'data: {"error": {"message": "Internal server error", "type": "InternalServerError", "param": null, "code": 500}}\n\n'
    summary = reassemble(role() + token("a") + error + DONE)
    assert summary.error == {"message": "Internal server error", "type": "InternalServerError",
                             "param": None, "code": 500}  # fmt: skip


def test_reassemble_counts_malformed_events_and_keeps_the_rest() -> None:
    summary = reassemble(role() + b"data: {not json\n\n" + token("ok") + DONE)
    assert summary.malformed_events == 1
    assert summary.response["choices"][0]["message"]["content"] == "ok"  # type: ignore[index]


def test_reassemble_completions_stream() -> None:
    def text(value: str, finish_reason: str | None) -> bytes:
        return chunk({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "tiny",
                      "choices": [{"index": 0, "text": value, "logprobs": None,
                                   "finish_reason": finish_reason, "stop_reason": None}]})  # fmt: skip

    summary = reassemble(text("he", None) + text("llo", "length") + DONE)
    assert summary.response["object"] == "text_completion"  # type: ignore[index]
    assert summary.response["choices"][0]["text"] == "hello"  # type: ignore[index]


@given(st.binary(max_size=2000))
def test_reassemble_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    reassemble(raw)
