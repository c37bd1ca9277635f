"""The usage-chunk filter and stream reassembly, on vLLM's captured wire format."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from sidecar.wire.sse import MAX_HELD_EVENT_BYTES, UsageChunkFilter, reassemble, split_done

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


LINE_ENDINGS = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}


def with_line_endings(events: list[bytes], ending: bytes) -> list[bytes]:
    """The LF-framed ``events`` re-framed with ``ending`` for every line end."""
    return [event.replace(b"\n", ending) for event in events]


def split_at(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(raw)) for cut in cuts})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


def summary_fields(raw: bytes) -> tuple[object, ...]:
    summary = reassemble(raw)
    return (summary.response, summary.usage, summary.finish_reason, summary.error, summary.done,
            summary.malformed_events)  # fmt: skip


@given(
    st.sampled_from(sorted(LINE_ENDINGS)),
    st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
    st.booleans(),
)
def test_reassembly_is_the_same_for_lf_crlf_and_cr_line_endings_and_any_split(
    ending: str, cuts: list[int], drop_last_blank_line: bool
) -> None:
    expected = summary_fields(b"".join(WITH_USAGE))
    raw = b"".join(with_line_endings(WITH_USAGE, LINE_ENDINGS[ending]))
    if drop_last_blank_line:  # the stream ends without the blank line after its last event
        raw = raw.removesuffix(LINE_ENDINGS[ending])
    assert summary_fields(b"".join(split_at(raw, cuts))) == expected


@given(
    st.sampled_from(sorted(LINE_ENDINGS)), st.lists(st.integers(min_value=0, max_value=2000),
                                                     max_size=12)
)  # fmt: skip
def test_filter_output_does_not_depend_on_line_endings_or_tcp_splits(
    ending: str, cuts: list[int]
) -> None:
    end = LINE_ENDINGS[ending]
    raw = b"".join(with_line_endings(WITH_USAGE, end))
    assert run_filter(split_at(raw, cuts)) == b"".join(with_line_endings(WITHOUT_USAGE, end))


@given(st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), min_size=12, max_size=12))
def test_reassembly_reads_a_stream_that_mixes_line_endings(endings: list[bytes]) -> None:
    events = [event.replace(b"\n\n", endings[i] + endings[-1 - i])
              for i, event in enumerate(WITH_USAGE)]  # fmt: skip
    assert summary_fields(b"".join(events)) == summary_fields(b"".join(WITH_USAGE))


def test_filter_passes_crlf_and_cr_token_chunks_through_at_once() -> None:
    for end in (b"\r\n", b"\r"):
        hide = UsageChunkFilter()
        first, second = with_line_endings([role(), token("a")], end)
        assert hide.feed(first) == first
        assert hide.feed(second) == second


def test_events_without_blank_lines_between_them_are_reassembled() -> None:
    raw = b"".join(event.replace(b"\n\n", b"\n") for event in WITH_USAGE)
    summary = reassemble(raw)
    assert summary_fields(raw) == summary_fields(b"".join(WITH_USAGE))
    assert summary.done


def test_split_done_holds_back_done_in_every_line_ending() -> None:
    for end in (b"\n", b"\r\n", b"\r"):
        done = DONE.replace(b"\n", end)
        assert split_done(token("a") + done) == (token("a"), done)


def test_a_64_mb_stream_without_event_ends_is_passed_on_as_it_arrives_in_bounded_memory() -> None:
    hide = UsageChunkFilter()
    piece = b"data: " + b"x" * (64 * 1024 - 7) + b"\n"  # data lines, never a blank line
    fed = forwarded = 0
    for _ in range(1024):
        fed += len(piece)
        forwarded += len(hide.feed(piece))
        assert fed - forwarded <= MAX_HELD_EVENT_BYTES  # held back: at most one small event
    forwarded += len(hide.flush())
    assert forwarded == 1024 * len(piece)
    # and the stream's events still get through the filter once it has a blank line again
    assert hide.feed(b"\n" + role()) == b"\n" + role()


def test_a_usage_chunk_after_an_oversized_event_is_still_hidden() -> None:
    big = b"data: " + b"y" * (2 * MAX_HELD_EVENT_BYTES) + b"\n\n"
    events = [role(), big, finish("FILE", fingerprint=False), usage(), DONE]
    out = run_filter([event[i : i + 1000] for event in events for i in range(0, len(event), 1000)])
    assert out == role() + big + finish("FILE", fingerprint=True) + DONE
