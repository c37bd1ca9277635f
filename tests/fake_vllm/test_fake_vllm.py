"""The fake vLLM answers like the captured vLLM 0.32.0 server (reference/vllm-api.md, vllm-cpu.md)."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp
import jsonschema
import openai
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
)
from openai.types.shared_params import ResponseFormatJSONSchema

from sidecar.fake_vllm import FakeVllm, FakeVllmConfig, create_fake_vllm
from sidecar.fake_vllm.schema import sample_json
from sidecar.fake_vllm.text import split_tokens
from sidecar.testing.servers import RunningServer, serving
from tests.helpers import wait_for

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
CHAT = {"model": "tiny", "messages": HELLO, "max_tokens": 8, "temperature": 0}
STREAM = {**CHAT, "stream": True}
CHAT_PATH, COMPLETIONS_PATH = "/v1/chat/completions", "/v1/completions"
RUNNING = b'vllm:num_requests_running{engine="0",model_name="tiny"} 0.0'

# Captured from vllm-cpu 0.32.0 (reference/vllm-cpu.md 6.2-6.4), max_model_len 512.
CAPTURED_CHAT = (
    b'{"id":"chatcmpl-b28920d876660cd4","object":"chat.completion","created":1795916911,"model":"tiny",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"styleFILEFILEFILEFILEFILEFILEFILE",'
    b'"refusal":null,"annotations":null,"audio":null,"function_call":null,"reasoning":null},'
    b'"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null,"routed_experts":null}],'
    b'"service_tier":null,"system_fingerprint":"vllm-0.32.0-6c26e6e8","usage":{"prompt_tokens":10,'
    b'"total_tokens":18,"completion_tokens":8,"prompt_tokens_details":null,"completion_tokens_details":null},'
    b'"prompt_logprobs":null,"prompt_token_ids":null,"prompt_text":null,"kv_transfer_params":null,'
    b'"ec_transfer_params":null,"metrics":null}'
)
CAPTURED_STREAM = b"""\
data: {"id":"chatcmpl-8822413e18d14b47","object":"chat.completion.chunk","created":1795916912,"model":"tiny","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}

data: {"id":"chatcmpl-8822413e18d14b47","object":"chat.completion.chunk","created":1795916912,"model":"tiny","choices":[{"index":0,"delta":{"content":"style"},"logprobs":null,"finish_reason":null,"token_ids":null}]}

data: {"id":"chatcmpl-8822413e18d14b47","object":"chat.completion.chunk","created":1795916912,"model":"tiny","choices":[{"index":0,"delta":{"content":"FILE"},"logprobs":null,"finish_reason":null,"token_ids":null}]}

data: {"id":"chatcmpl-8822413e18d14b47","object":"chat.completion.chunk","created":1795916912,"model":"tiny","choices":[{"index":0,"delta":{"content":"FILE"},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}]}

data: {"id":"chatcmpl-8822413e18d14b47","object":"chat.completion.chunk","created":1795916912,"model":"tiny","choices":[],"usage":{"prompt_tokens":10,"total_tokens":13,"completion_tokens":3},"system_fingerprint":"vllm-0.32.0-6c26e6e8"}

data: [DONE]

"""
CAPTURED_UNKNOWN_MODEL = (
    b'{"error":{"message":"The model `nope` does not exist. Valid aliases: tiny.",'
    b'"type":"NotFoundError","param":"model","code":404}}'
)
CAPTURED_MAX_TOKENS = (
    b'{"error":{"message":"max_tokens=600 cannot be greater than max_model_len=512. Please request '
    b'fewer output tokens. (parameter=max_tokens, value=600)","type":"BadRequestError",'
    b'"param":"max_tokens","code":400}}'
)
VARIABLE_PARTS = [
    (re.compile(rb'"id":"(chatcmpl|cmpl)-[^"]+"'), rb'"id":"\1-ID"'),
    (re.compile(rb'"created":\d+'), b'"created":0'),
    (
        re.compile(rb'"system_fingerprint":"vllm-0\.32\.0-[0-9a-f]{8}"'),
        b'"system_fingerprint":"FP"',
    ),
    (re.compile(rb'"content":"[^"]+"'), b'"content":"TEXT"'),
]


def normalized(body: bytes) -> bytes:
    """``body`` with what differs between two runs (ids, clock, hash, model text) blanked."""
    for pattern, replacement in VARIABLE_PARTS:
        body = pattern.sub(replacement, body)
    return body


def keys(mapping: Mapping[str, Any]) -> str:
    return " ".join(mapping)


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return orjson.loads(self.body)

    def events(self) -> list[bytes]:
        """The SSE payloads, checking the ``data: <payload>\\n\\n`` framing on the way."""
        assert self.body.endswith(b"\n\n")
        frames = self.body[:-2].split(b"\n\n")
        assert all(frame.startswith(b"data: ") and b"\n" not in frame for frame in frames)
        return [frame.removeprefix(b"data: ") for frame in frames]

    def chunks(self) -> list[dict[str, Any]]:
        *events, done = self.events()
        assert done == b"[DONE]"
        return [orjson.loads(event) for event in events]


def call(
    url: str, path: str, body: Any = None, *, raw: bytes | None = None, method: str | None = None,
    headers: dict[str, str] | None = None, content_type: str | None = "application/json",
) -> Answer:  # fmt: skip
    """One request with urllib: exact status, headers and body bytes, errors included."""
    data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
    request = urllib.request.Request(url + path, data=data, method=method)
    if content_type is not None and data is not None:
        request.add_header("content-type", content_type)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            found = {k.lower(): v for k, v in response.headers.items()}
            return Answer(response.status, found, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def raw_stream(port: int, body: dict[str, Any], headers: dict[str, str]) -> socket.socket:
    """A streaming chat request on a bare socket, so the test controls the connection."""
    payload = orjson.dumps(body)
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head = (f"POST {CHAT_PATH} HTTP/1.1\r\nhost: fake\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\n{lines}\r\n")  # fmt: skip
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head.encode() + payload)
    return sock


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[FakeVllm, RunningServer]]:
    """One default fake for the tests that leave its config alone."""
    fake = create_fake_vllm()
    with serving(fake) as server:
        yield fake, server


@pytest.fixture
def url(shared: tuple[FakeVllm, RunningServer]) -> str:
    return shared[1].url


@pytest.fixture
def sdk(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as client:
        yield client


# non-streaming bodies ---------------------------------------------------------------------------


def test_chat_body_matches_the_capture_byte_for_byte_but_ids_and_text(url: str) -> None:
    answer = call(url, CHAT_PATH, CHAT)
    assert answer.status == 200
    assert (answer.headers["content-type"], answer.headers["vary"]) == (
        "application/json",
        "Origin",
    )
    assert answer.headers["content-length"] == str(len(answer.body))
    assert normalized(answer.body) == normalized(CAPTURED_CHAT)
    body = answer.json()
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{16}", body["id"])
    assert abs(body["created"] - time.time()) < 5


def test_completion_body_has_the_captured_key_order(url: str) -> None:
    body = call(url, COMPLETIONS_PATH, {"model": "tiny", "prompt": "hello", "max_tokens": 3}).json()
    assert keys(body) == (
        "id object created model choices service_tier system_fingerprint usage "
        "kv_transfer_params ec_transfer_params metrics"
    )
    assert re.fullmatch(r"cmpl-[0-9a-f]{16}", body["id"])
    assert body["object"] == "text_completion"
    assert keys(body["choices"][0]) == (
        "index text logprobs finish_reason stop_reason token_ids prompt_logprobs "
        "prompt_token_ids routed_experts"
    )
    assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]) == (1, 3)


def test_same_prompt_gives_same_text_and_each_adapter_its_own(url: str) -> None:
    def text(model: str, content: str = "hello") -> str:
        body = {**CHAT, "model": model, "messages": [{"role": "user", "content": content}]}
        return str(call(url, CHAT_PATH, body).json()["choices"][0]["message"]["content"])

    assert text("tiny") == text("tiny")
    assert len({text("tiny"), text("support"), text("legal"), text("tiny", "other")}) == 4


def test_model_is_optional_and_adapters_echo_their_own_name(url: str) -> None:
    without_model = call(url, CHAT_PATH, {"messages": HELLO}).json()
    assert without_model["model"] == "tiny"
    assert without_model["usage"]["completion_tokens"] == 16  # default_max_tokens
    assert call(url, CHAT_PATH, {**CHAT, "model": "support"}).json()["model"] == "support"


def test_n_returns_indexed_choices_and_sums_usage(url: str) -> None:
    body = call(url, CHAT_PATH, {**CHAT, "n": 2, "max_tokens": 4}).json()
    assert [choice["index"] for choice in body["choices"]] == [0, 1]
    assert body["usage"]["completion_tokens"] == 8


def test_unknown_body_keys_are_accepted(url: str) -> None:
    body = {**CHAT, "guided_choice": ["a"], "top_k": 3, "something_new": {"x": 1}}
    assert call(url, CHAT_PATH, body).status == 200


def test_stop_string_cuts_the_output_and_becomes_stop_reason(url: str) -> None:
    body = {**CHAT, "stop": [" world"], "max_tokens": 50}
    answer = call(url, CHAT_PATH, body, headers={"x-fake-output": "hello world again"})
    choice = answer.json()["choices"][0]
    assert choice["message"]["content"] == "hello"
    assert (choice["finish_reason"], choice["stop_reason"]) == ("stop", " world")


# the real openai SDK ----------------------------------------------------------------------------


def test_sync_sdk_chat_completions_and_models(sdk: openai.OpenAI) -> None:
    chat = sdk.chat.completions.create(model="tiny", messages=HELLO, max_tokens=5)
    assert chat.choices[0].finish_reason == "length"
    assert chat.usage is not None
    assert chat.usage.completion_tokens == 5
    completion = sdk.completions.create(model="legal", prompt="hello", max_tokens=4)
    assert completion.model == "legal"
    assert [model.id for model in sdk.models.list()] == ["tiny", "support", "legal"]


def test_sync_sdk_stream_reassembles_the_non_stream_text(sdk: openai.OpenAI) -> None:
    whole = sdk.chat.completions.create(model="support", messages=HELLO, max_tokens=6)
    stream = sdk.chat.completions.create(
        model="support", messages=HELLO, max_tokens=6, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    pieces = [choice.delta.content or "" for chunk in chunks for choice in chunk.choices]
    assert "".join(pieces) == whole.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6


async def test_async_sdk_streams_chat_and_completions(url: str) -> None:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as client:
        chat = await client.chat.completions.create(
            model="tiny", messages=HELLO, max_tokens=4, stream=True,
        )  # fmt: skip
        reasons = [choice.finish_reason async for chunk in chat for choice in chunk.choices]
        assert reasons == [None, None, None, None, "length"]
        completion = await client.completions.create(
            model="legal", prompt="hi", max_tokens=3, stream=True
        )
        texts = [choice.text async for chunk in completion for choice in chunk.choices]
        assert len(texts) == 3


async def test_async_sdk_non_stream_on_an_adapter(url: str) -> None:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as client:
        chat = await client.chat.completions.create(model="legal", messages=HELLO, max_tokens=2)
    assert chat.model == "legal"
    assert chat.usage is not None
    assert chat.usage.total_tokens == 12


def test_sdk_raises_not_found_for_an_unknown_model(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="Valid aliases: tiny"):
        sdk.chat.completions.create(model="nope", messages=HELLO)


# SSE --------------------------------------------------------------------------------------------


def test_stream_with_usage_matches_the_capture_byte_for_byte_but_ids_and_text(url: str) -> None:
    body = {**STREAM, "max_tokens": 3, "stream_options": {"include_usage": True}}
    answer = call(url, CHAT_PATH, body)
    assert answer.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert answer.headers["vary"] == "Origin"
    assert "content-length" not in answer.headers
    assert normalized(answer.body) == normalized(CAPTURED_STREAM)
    chunks = answer.chunks()
    assert (
        len({chunk["id"] for chunk in chunks}) == len({chunk["created"] for chunk in chunks}) == 1
    )
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def test_without_include_usage_the_finish_chunk_carries_the_fingerprint(url: str) -> None:
    for options in ({}, {"stream_options": {"include_usage": False}}):
        *tokens, finish = call(url, CHAT_PATH, {**STREAM, "max_tokens": 3, **options}).chunks()
        assert all(keys(chunk) == "id object created model choices" for chunk in tokens[1:])
        assert keys(finish) == "id object created model choices system_fingerprint"
        choice = finish["choices"][0]
        assert keys(choice) == "index delta logprobs finish_reason stop_reason token_ids"
        assert (choice["finish_reason"], choice["stop_reason"]) == ("length", None)


def test_continuous_usage_stats_put_a_running_usage_on_every_chunk(url: str) -> None:
    options = {"include_usage": True, "continuous_usage_stats": True}
    chunks = call(url, CHAT_PATH, {**STREAM, "max_tokens": 2, "stream_options": options}).chunks()
    assert [chunk["usage"]["completion_tokens"] for chunk in chunks] == [0, 1, 2, 2]
    assert keys(chunks[0]) == "id object created model choices usage prompt_token_ids prompt_text"
    assert keys(chunks[0]["usage"]) == (
        "prompt_tokens total_tokens completion_tokens completion_tokens_details"
    )
    assert keys(chunks[-1]["usage"]) == "prompt_tokens total_tokens completion_tokens"


def test_stream_with_n_2_sends_both_role_chunks_first_and_a_finish_per_index(url: str) -> None:
    chunks = call(url, CHAT_PATH, {**STREAM, "n": 2, "max_tokens": 2}).chunks()
    assert all(len(chunk["choices"]) == 1 for chunk in chunks)
    choices = [chunk["choices"][0] for chunk in chunks]
    assert [choice["index"] for choice in choices[:2]] == [0, 1]
    assert [choice["index"] for choice in choices if choice["finish_reason"]] == [0, 1]


def test_completion_stream_has_no_role_chunk_and_text_choices(url: str) -> None:
    body = {
        "prompt": "hello",
        "max_tokens": 2,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    first, finish, usage = call(url, COMPLETIONS_PATH, body).chunks()
    assert first["object"] == "text_completion"
    assert keys(first["choices"][0]) == (
        "index text logprobs finish_reason stop_reason prompt_token_ids token_ids"
    )
    assert finish["choices"][0]["finish_reason"] == "length"
    assert usage["usage"] == {"prompt_tokens": 1, "total_tokens": 3, "completion_tokens": 2}


def test_malformed_sse_header_sends_one_unparseable_event(url: str) -> None:
    *events, done = call(url, CHAT_PATH, STREAM, headers={"x-fake-malformed-sse": "1"}).events()
    broken = []
    for event in events:
        try:
            orjson.loads(event)
        except orjson.JSONDecodeError:
            broken.append(event)
    assert len(broken) == 1
    assert done == b"[DONE]"


# request ids ------------------------------------------------------------------------------------


def test_request_id_header_becomes_the_response_id_but_is_not_echoed_by_default(url: str) -> None:
    answer = call(url, CHAT_PATH, CHAT, headers={"x-request-id": "my-req-123"})
    assert answer.json()["id"] == "chatcmpl-my-req-123"
    assert "x-request-id" not in answer.headers
    completion = call(url, COMPLETIONS_PATH, {"prompt": "hi"}, headers={"x-request-id": "abc"})
    assert completion.json()["id"] == "cmpl-abc"
    from_body = call(url, CHAT_PATH, {**CHAT, "request_id": "from-body"}).json()
    assert from_body["id"] == "chatcmpl-from-body"


def test_request_id_headers_flag_echoes_on_every_route() -> None:
    config = FakeVllmConfig(enable_request_id_headers=True, api_key="sekret")
    with serving(create_fake_vllm(config)) as server:
        assert (
            call(server.url, "/health", headers={"x-request-id": "r-1"}).headers["x-request-id"]
            == "r-1"
        )
        assert re.fullmatch(r"[0-9a-f]{32}", call(server.url, "/version").headers["x-request-id"])
        denied = call(server.url, "/v1/models", headers={"x-request-id": "r-2"})
        assert (denied.status, denied.headers["x-request-id"]) == (401, "r-2")
        headers = {"x-request-id": "r-3", "authorization": "Bearer sekret"}
        assert call(server.url, CHAT_PATH, STREAM, headers=headers).headers["x-request-id"] == "r-3"


# errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_is_the_captured_json_404_even_when_streaming(url: str, stream: bool) -> None:
    answer = call(url, CHAT_PATH, {**CHAT, "model": "nope", "stream": stream})
    assert (answer.status, answer.body) == (404, CAPTURED_UNKNOWN_MODEL)
    assert answer.headers["content-type"] == "application/json"


def test_max_tokens_over_max_model_len_is_the_captured_400(url: str) -> None:
    answer = call(url, CHAT_PATH, {**CHAT, "max_tokens": 600})
    assert (answer.status, answer.body) == (400, CAPTURED_MAX_TOKENS)


VALIDATION_CASES = {
    "stream_options_without_stream": (
        {**CHAT, "stream_options": {"include_usage": True}},
        "Stream options can only be defined when `stream=True`. (parameter=stream_options)",
        "BadRequestError", "stream_options",
    ),
    "negative_temperature": (
        {**CHAT, "temperature": -1},
        "temperature must be non-negative, got -1.0. (parameter=temperature, value=-1.0)",
        "BadRequestError", "temperature",
    ),
    "n_below_one": ({**CHAT, "n": 0}, "n must be at least 1, got 0.", "BadRequestError", None),
    "missing_messages": (
        {"model": "tiny"},
        "1 validation error:\n  {'type': 'missing', 'loc': 'body.messages', 'msg': 'Field required', "
        "'input': '<dict of 1 items>'}",
        "Bad Request", "body.messages",
    ),
    "prompt_too_long": (
        {**CHAT, "messages": [{"role": "user", "content": "word " * 600}]},
        "This model's maximum context length is 512 tokens. However, your prompt contains at least 513 "
        "input tokens, which exceeds this limit even without any output tokens. Please reduce the length "
        "of the input prompt. (parameter=input_tokens, value=513)",
        "BadRequestError", "input_tokens",
    ),
    "json_schema_without_schema": (
        {**CHAT, "response_format": {"type": "json_schema"}},
        "When response_format type is 'json_schema', the 'json_schema' field must be provided. "
        "(parameter=response_format)",
        "BadRequestError", "response_format",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", VALIDATION_CASES)
def test_validation_errors_use_vllms_messages_types_and_params(url: str, case: str) -> None:
    body, message, kind, param = VALIDATION_CASES[case]
    answer = call(url, CHAT_PATH, body)
    assert answer.status == 400
    assert answer.json() == {
        "error": {"message": message, "type": kind, "param": param, "code": 400}
    }


def test_malformed_json_is_a_bad_request_at_the_decode_position(url: str) -> None:
    error = call(url, CHAT_PATH, raw=b'{"model": "tiny",').json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("Bad Request", "body.17", 400)
    assert error["message"].startswith(
        "1 validation error:\n  {'type': 'json_invalid', 'loc': 'body.17', 'msg': 'JSON decode error'"
    )


def test_wrong_content_type_is_unsupported_media_type(url: str) -> None:
    answer = call(url, CHAT_PATH, CHAT, content_type="text/plain")
    message = "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed"
    assert answer.json() == {
        "error": {"message": message, "type": "Bad Request", "param": None, "code": 400}
    }


def test_unknown_path_is_404_and_wrong_method_is_405_with_allow(url: str) -> None:
    missing = call(url, "/v1/embeddings", {"input": "x"})
    assert (missing.status, missing.body, missing.headers["vary"]) == (
        404,
        b'{"detail":"Not Found"}',
        "Origin",
    )
    wrong = call(url, CHAT_PATH, method="GET")
    assert (wrong.status, wrong.body) == (405, b'{"detail":"Method Not Allowed"}')
    assert wrong.headers["allow"] == "POST"
    assert call(url, "/health", {"x": 1}).headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    ("status", "kind"),
    [(500, "InternalServerError"), (503, "ServiceUnavailableError"), (400, "BadRequestError")],
)
def test_status_header_answers_that_error_in_vllms_shape(url: str, status: int, kind: str) -> None:
    answer = call(url, CHAT_PATH, STREAM, headers={"x-fake-status": str(status)})
    assert (answer.status, answer.headers["content-type"]) == (status, "application/json")
    assert answer.json()["error"] | {"message": ""} == {
        "message": "",
        "type": kind,
        "param": None,
        "code": status,
    }


def test_error_rate_one_answers_every_generation_with_500() -> None:
    fake = create_fake_vllm(FakeVllmConfig(error_rate=1.0))
    with serving(fake) as server:
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0) as client:
            for _ in range(3):
                with pytest.raises(openai.InternalServerError):
                    client.chat.completions.create(model="tiny", messages=HELLO)
        assert call(server.url, COMPLETIONS_PATH, {"prompt": "x"}).body == (
            b'{"error":{"message":"Internal server error","type":"InternalServerError","param":null,"code":500}}'
        )
        assert call(server.url, "/v1/models").status == 200
        fake.config.error_rate = 0.0
        assert call(server.url, COMPLETIONS_PATH, {"prompt": "x"}).status == 200
    assert fake.requests_started == 5


# faults -----------------------------------------------------------------------------------------


def test_reset_after_chunks_aborts_the_connection_mid_stream(
    shared: tuple[FakeVllm, RunningServer],
) -> None:
    received, reset = b"", False
    with raw_stream(
        shared[1].port, {**STREAM, "max_tokens": 50}, {"x-fake-reset-after-chunks": "3"}
    ) as sock:
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                reset = True
                break
            if not data:
                break
            received += data
    assert reset  # an RST, not a clean close
    assert received.startswith(b"HTTP/1.1 200 OK")
    assert received.count(b"data: ") == 3
    assert b"[DONE]" not in received
    assert not received.endswith(b"0\r\n\r\n")  # the chunked body never ended


def test_sdk_sees_a_reset_stream_as_a_connection_error(sdk: openai.OpenAI) -> None:
    seen: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIConnectionError):  # noqa: PT012
        stream = sdk.chat.completions.create(
            model="tiny", messages=HELLO, max_tokens=50, stream=True,
            extra_headers={"x-fake-reset-after-chunks": "3"},
        )  # fmt: skip
        seen.extend(stream)
    assert len(seen) == 3


async def test_reset_after_chunks_in_config_breaks_every_stream_for_aiohttp() -> None:
    with serving(create_fake_vllm(FakeVllmConfig(reset_after_chunks=2))) as server:
        async with aiohttp.ClientSession() as session:
            async with session.post(server.url + CHAT_PATH, json=STREAM) as response:
                assert response.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()
            async with session.post(server.url + CHAT_PATH, json=CHAT) as response:
                assert response.status == 200  # a non-stream answer is whole
                assert (await response.json())["choices"]


def test_client_disconnect_mid_stream_stops_generation_and_counts_a_cancel() -> None:
    fake = create_fake_vllm()
    with serving(fake) as server:
        body = {**STREAM, "max_tokens": 400}
        with raw_stream(server.port, body, {"x-fake-chunk-delay-ms": "20"}) as sock:
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        wait_for(
            lambda: fake.requests_cancelled == 1, timeout_s=5, what="the fake to see the disconnect"
        )
        wait_for(
            lambda: RUNNING in call(server.url, "/metrics").body,
            timeout_s=5,
            what="the stream to stop",
        )
        metrics = call(server.url, "/metrics").body
    assert b'vllm:generation_tokens_total{engine="0",model_name="tiny"} 0.0' in metrics
    assert fake.requests_started == 1


def test_client_that_leaves_during_latency_is_counted_as_cancelled() -> None:
    fake = create_fake_vllm()
    with serving(fake) as server:
        with raw_stream(server.port, CHAT, {"x-fake-latency-ms": "5000"}):
            wait_for(lambda: fake.requests_started == 1, timeout_s=4, what="the request to arrive")
        wait_for(
            lambda: fake.requests_cancelled == 1, timeout_s=4, what="the fake to see the disconnect"
        )


def test_latency_header_delays_the_response_headers(url: str) -> None:
    started = time.perf_counter()
    assert call(url, CHAT_PATH, CHAT, headers={"x-fake-latency-ms": "200"}).status == 200
    assert time.perf_counter() - started >= 0.2


def test_chunk_delay_spaces_the_events(url: str) -> None:
    started = time.perf_counter()
    call(url, CHAT_PATH, {**STREAM, "max_tokens": 4}, headers={"x-fake-chunk-delay-ms": "30"})
    assert time.perf_counter() - started >= 5 * 0.03  # role, 4 tokens, [DONE]: 5 gaps


def test_bad_knob_value_is_a_400(url: str) -> None:
    answer = call(url, CHAT_PATH, CHAT, headers={"x-fake-latency-ms": "soon"})
    assert (answer.status, answer.json()["error"]["type"]) == (400, "BadRequestError")


# outputs ----------------------------------------------------------------------------------------


def test_output_header_sets_the_exact_text_and_the_stream_cuts_it_into_tokens(url: str) -> None:
    headers = {"x-fake-output": "Hello there, world"}
    choice = call(url, CHAT_PATH, {**CHAT, "max_tokens": 100}, headers=headers).json()["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("Hello there, world", "stop")
    chunks = call(url, CHAT_PATH, {**STREAM, "max_tokens": 100}, headers=headers).chunks()
    assert [chunk["choices"][0]["delta"]["content"] for chunk in chunks[1:]] == [
        "Hello",
        " there,",
        " world",
    ]
    cut = call(url, CHAT_PATH, {**CHAT, "max_tokens": 2}, headers=headers).json()["choices"][0]
    assert (cut["message"]["content"], cut["finish_reason"]) == ("Hello there,", "length")


def test_canned_outputs_cycle_in_order() -> None:
    with serving(create_fake_vllm(FakeVllmConfig(outputs=["one", "two"]))) as server:
        answers = [call(server.url, COMPLETIONS_PATH, {"prompt": "x"}).json() for _ in range(3)]
    assert [answer["choices"][0]["text"] for answer in answers] == ["one", "two", "one"]


def test_tool_call_header_returns_a_tool_call_whole_and_streamed(sdk: openai.OpenAI) -> None:
    headers = {
        "x-fake-tool-call": json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})
    }
    chat = sdk.chat.completions.create(model="tiny", messages=HELLO, extra_headers=headers)
    choice = chat.choices[0]
    assert (choice.finish_reason, choice.message.content) == ("tool_calls", None)
    assert choice.message.tool_calls is not None
    tool_call = choice.message.tool_calls[0]
    assert isinstance(tool_call, ChatCompletionMessageFunctionToolCall)
    assert tool_call.id.startswith("chatcmpl-tool-")
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}
    stream = sdk.chat.completions.create(
        model="tiny", messages=HELLO, stream=True, extra_headers=headers
    )
    deltas = [choice for chunk in stream for choice in chunk.choices]
    functions = [
        (call.id, call.function) for delta in deltas for call in delta.delta.tool_calls or []
    ]
    assert [function.name for id_, function in functions if id_ and function] == ["get_weather"]
    arguments = "".join(function.arguments or "" for _, function in functions if function)
    assert json.loads(arguments) == {"city": "Paris"}
    assert deltas[-1].finish_reason == "tool_calls"


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 99},
        "ok": {"type": "boolean"},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 2},
        "score": {"type": "number", "exclusiveMinimum": 5},
    },
    "required": ["name", "age", "ok"],
    "additionalProperties": False,
}


def test_json_schema_response_format_returns_a_valid_document(sdk: openai.OpenAI) -> None:
    response_format: ResponseFormatJSONSchema = {
        "type": "json_schema",
        "json_schema": {"name": "p", "schema": SCHEMA, "strict": True},
    }
    chat = sdk.chat.completions.create(
        model="tiny", messages=HELLO, max_tokens=60, response_format=response_format,
    )  # fmt: skip
    assert chat.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(chat.choices[0].message.content or ""), SCHEMA)
    anything = sdk.chat.completions.create(
        model="tiny", messages=HELLO, response_format={"type": "json_object"},
    )  # fmt: skip
    assert json.loads(anything.choices[0].message.content or "") == {}


def test_structured_outputs_choice_returns_one_of_the_choices(url: str) -> None:
    body = {**CHAT, "structured_outputs": {"choice": ["yes", "no"]}}
    choice = call(url, CHAT_PATH, body).json()["choices"][0]
    assert choice["message"]["content"] in {"yes", "no"}
    assert choice["finish_reason"] == "stop"


LEAF_SCHEMAS = st.one_of(
    st.builds(lambda low, span: {"type": "integer", "minimum": low, "maximum": low + span},
              st.integers(-1000, 1000), st.integers(0, 50)),
    st.builds(lambda low: {"type": "number", "exclusiveMinimum": low}, st.floats(-1e6, 1e6)),
    st.builds(lambda low, span: {"type": "string", "minLength": low, "maxLength": low + span},
              st.integers(0, 20), st.integers(0, 5)),
    st.sampled_from([{"type": "boolean"}, {"type": "null"}, {"type": "string", "format": "email"}]),
    st.lists(st.text(max_size=5), min_size=1, max_size=3).map(lambda values: {"enum": values}),
)  # fmt: skip
SCHEMAS = st.recursive(
    LEAF_SCHEMAS,
    lambda children: st.one_of(
        st.dictionaries(st.text(min_size=1, max_size=6), children, max_size=4).map(
            lambda props: {"type": "object", "properties": props, "required": sorted(props)}
        ),
        st.builds(lambda items, low: {"type": "array", "items": items, "minItems": low},
                  children, st.integers(0, 3)),
        st.lists(children, min_size=1, max_size=2).map(lambda options: {"anyOf": options}),
    ),
    max_leaves=8,
)  # fmt: skip


@given(SCHEMAS)
def test_schema_sampler_satisfies_the_schema(schema: dict[str, Any]) -> None:
    jsonschema.validate(sample_json(schema), schema)


def test_schema_sampler_follows_local_refs() -> None:
    schema = {"$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
              "type": "array", "items": {"$ref": "#/$defs/point"}, "minItems": 1}  # fmt: skip
    jsonschema.validate(sample_json(schema), schema)


@given(st.text())
def test_token_split_reassembles_the_text(text: str) -> None:
    assert "".join(split_tokens(text)) == text


# models and runtime LoRA ------------------------------------------------------------------------


def test_models_lists_the_base_card_then_adapter_cards(url: str) -> None:
    answer = call(url, "/v1/models")
    assert (answer.headers["content-type"], answer.headers["vary"]) == (
        "application/json",
        "Origin",
    )
    base, support, legal = answer.json()["data"]
    assert keys(base) == "id object created owned_by root parent max_model_len permission"
    assert (base["id"], base["parent"], base["max_model_len"], base["owned_by"]) == (
        "tiny",
        None,
        512,
        "vllm",
    )
    assert (support["id"], support["root"], support["parent"]) == (
        "support",
        "/adapters/support",
        "tiny",
    )
    assert support["max_model_len"] is None
    assert legal["id"] == "legal"
    permission = base["permission"][0]
    assert keys(permission) == (
        "id object created allow_create_engine allow_sampling allow_logprobs allow_search_indices "
        "allow_view allow_fine_tuning organization group is_blocking"
    )
    assert re.fullmatch(r"modelperm-[0-9a-f]{16}", permission["id"])
    assert abs(base["created"] - time.time()) < 5


def test_runtime_lora_load_and_unload_round_trip() -> None:
    with serving(create_fake_vllm()) as server:
        load = {"lora_name": "extra", "lora_path": "/adapters/extra"}
        added = call(server.url, "/v1/load_lora_adapter", load)
        assert (added.status, added.body) == (
            200,
            b"Success: LoRA adapter 'extra' added successfully.",
        )
        assert "content-type" not in added.headers
        assert [card["id"] for card in call(server.url, "/v1/models").json()["data"]][-1] == "extra"
        assert call(server.url, CHAT_PATH, {**CHAT, "model": "extra"}).json()["model"] == "extra"
        assert call(server.url, "/v1/load_lora_adapter", load).body == (
            b'{"error":{"message":"The lora adapter \'extra\' has already been loaded. If you want to load '
            b'the adapter in place, set \'load_inplace\' to True.","type":"InvalidUserInput","param":null,'
            b'"code":400}}'
        )
        removed = call(server.url, "/v1/unload_lora_adapter", {"lora_name": "extra"})
        assert (removed.status, removed.body) == (
            200,
            b"Success: LoRA adapter 'extra' removed successfully.",
        )
        gone = call(server.url, "/v1/unload_lora_adapter", {"lora_name": "extra"})
        assert (gone.status, gone.body) == (404, (
            b'{"error":{"message":"The lora adapter \'extra\' cannot be found.","type":"NotFoundError",'
            b'"param":null,"code":404}}'
        ))  # fmt: skip
        assert call(server.url, CHAT_PATH, {**CHAT, "model": "extra"}).status == 404


def test_lora_load_without_path_is_a_bad_request_on_body_lora_path(url: str) -> None:
    answer = call(url, "/v1/load_lora_adapter", {"lora_name": "x"})
    message = (
        "1 validation error:\n  {'type': 'missing', 'loc': 'body.lora_path', 'msg': 'Field required', "
        "'input': '<dict of 1 items>'}"
    )
    assert answer.json() == {
        "error": {"message": message, "type": "Bad Request", "param": "body.lora_path", "code": 400}
    }


def test_runtime_lora_routes_do_not_exist_when_disabled() -> None:
    with serving(create_fake_vllm(FakeVllmConfig(allow_runtime_lora=False))) as server:
        answer = call(server.url, "/v1/load_lora_adapter", {"lora_name": "x", "lora_path": "/x"})
    assert (answer.status, answer.body) == (404, b'{"detail":"Not Found"}')


# auth and info routes ---------------------------------------------------------------------------


def test_api_key_guards_only_the_v1_v2_inference_cohere_prefixes() -> None:
    fake = create_fake_vllm(FakeVllmConfig(api_key="sekret"))
    with serving(fake) as server:
        denied = call(server.url, "/v1/models")
        assert (denied.status, denied.body) == (401, b'{"error":"Unauthorized"}')
        assert denied.headers["content-type"] == "application/json"
        assert (
            call(server.url, "/v1/models", headers={"authorization": "Bearer wrong"}).status == 401
        )
        assert (
            call(server.url, "/v1/models", headers={"authorization": "bearer sekret"}).status == 200
        )
        assert call(server.url, "/inference/v1/generate", {}).status == 401
        for path in ("/health", "/metrics", "/version", "/ping", "/load"):
            assert call(server.url, path).status == 200, path
        assert call(server.url, "/tokenize", {"prompt": "hi"}).status == 200
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key="sekret", max_retries=0) as client:
            assert client.chat.completions.create(model="tiny", messages=HELLO).choices
    assert fake.last_request_headers is not None
    assert fake.last_request_headers["authorization"] == "Bearer sekret"


def test_info_routes_answer_like_vllm(url: str) -> None:
    health = call(url, "/health")
    assert (health.status, health.body, health.headers["content-length"]) == (200, b"", "0")
    assert "content-type" not in health.headers
    assert call(url, "/health", method="HEAD").status == 200
    assert call(url, "/ping", {}).status == 200
    assert call(url, "/version").body == b'{"version":"0.32.0"}'
    assert call(url, "/load").body == b'{"server_load":0}'


def test_tokenize_counts_a_chat_like_the_generation_usage(url: str) -> None:
    tokens = call(url, "/tokenize", {"model": "tiny", "messages": HELLO}).json()
    assert keys(tokens) == "count max_model_len tokens token_strs"
    assert (tokens["count"], tokens["max_model_len"], tokens["token_strs"]) == (10, 512, None)
    prompt = call(url, "/tokenize", {"prompt": "hello world", "return_token_strs": True}).json()
    assert prompt["token_strs"] == ["hello", " world"]
    assert isinstance(call(url, "/detokenize", {"tokens": prompt["tokens"]}).json()["prompt"], str)


def test_metrics_use_vllm_names_and_labels(url: str) -> None:
    labels = '{engine="0",model_name="tiny"}'

    def sample(name: str, exposition: bytes) -> float:
        found = re.search(re.escape(f"{name}{labels} ").encode() + rb"(\S+)", exposition)
        return float(found.group(1)) if found else 0.0

    before = call(url, "/metrics").body
    call(url, CHAT_PATH, {**CHAT, "max_tokens": 3})
    answer = call(url, "/metrics")
    assert answer.headers["content-type"].startswith("text/plain; version=")
    after = answer.body
    assert (
        sample("vllm:prompt_tokens_total", after) - sample("vllm:prompt_tokens_total", before) == 10
    )
    assert (
        sample("vllm:generation_tokens_total", after)
        - sample("vllm:generation_tokens_total", before)
        == 3
    )
    for name in ("vllm:num_requests_running", "vllm:e2e_request_latency_seconds_count",
                 "vllm:time_to_first_token_seconds_count", "vllm:prompt_tokens_created"):  # fmt: skip
        assert f"{name}{labels}".encode() in after, name
    assert (
        b'vllm:request_success_total{engine="0",finished_reason="length",model_name="tiny"}'
        in after
    )


def test_requests_are_recorded_for_tests(shared: tuple[FakeVllm, RunningServer]) -> None:
    fake, server = shared
    before = fake.requests_started
    call(server.url, CHAT_PATH, CHAT, headers={"x-custom": "1"})
    call(server.url, "/v1/models")
    assert fake.requests_started == before + 1
    assert fake.last_request_headers is not None
    assert fake.last_request_headers["x-custom"] == "1"
    assert fake.last_request_body == orjson.dumps(CHAT)
