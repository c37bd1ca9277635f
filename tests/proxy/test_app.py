"""The proxy end to end: real openai client -> sidecar -> fake vLLM, rows in SQLite and Postgres."""

from __future__ import annotations

import re
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam

from sidecar.fake_vllm import FakeVllm
from sidecar.testing.harness import RunningSidecar
from sidecar.testing.servers import RunningServer
from tests.helpers import fetch_rows, wait_for, wait_for_rows
from tests.test_metrics import CONTRACT_METRICS

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
CHAT = {"model": "tiny", "messages": MESSAGES, "max_tokens": 5}
_VARYING = re.compile(rb'"(id|created)":("[^"]*"|\d+)')


def normalised(body: bytes) -> bytes:
    """The body with the fields the upstream itself varies per call (id, created) blanked."""
    return _VARYING.sub(rb'"\1":"*"', body)


def sse_events(body: bytes) -> list[bytes]:
    return [normalised(event) for event in body.split(b"\n\n") if event]


def client(base_url: str, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test", max_retries=0, **kwargs)


def test_non_streaming_chat_is_byte_identical_to_a_direct_call(
    upstream: RunningServer, sidecar: RunningSidecar
) -> None:
    direct = httpx.post(f"{upstream.url}/v1/chat/completions", json=CHAT)
    proxied = httpx.post(f"{sidecar.proxy_url}/v1/chat/completions", json=CHAT)
    assert proxied.status_code == direct.status_code == 200
    assert normalised(proxied.content) == normalised(direct.content)
    assert proxied.headers["content-type"] == direct.headers["content-type"]
    assert re.fullmatch(r"[0-9a-f]{32}", proxied.headers["x-request-id"])


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_events_are_identical_to_a_direct_call(
    upstream: RunningServer, sidecar: RunningSidecar, include_usage: bool
) -> None:
    body: dict[str, Any] = {**CHAT, "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    direct = httpx.post(f"{upstream.url}/v1/chat/completions", json=body)
    proxied = httpx.post(f"{sidecar.proxy_url}/v1/chat/completions", json=body)
    assert proxied.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert sse_events(proxied.content) == sse_events(direct.content)
    assert (b'"choices":[]' in proxied.content) is include_usage


def test_openai_sdk_sync_chat_and_stream_through_the_sidecar(
    sidecar: RunningSidecar, database_url: str
) -> None:
    sdk = client(sidecar.proxy_url)
    completion = sdk.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content
    stream = sdk.chat.completions.create(
        model="support", messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=8
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    rows = wait_for_rows(database_url, 2)
    plain, streamed = rows
    assert plain["model"] == "tiny"
    assert plain["base_model"] == "tiny"
    assert plain["adapter"] is None
    assert plain["completion_id"] == completion.id
    assert plain["prompt_tokens"] == completion.usage.prompt_tokens  # type: ignore[union-attr]
    assert plain["completion_tokens"] == completion.usage.completion_tokens  # type: ignore[union-attr]
    assert plain["stream"] is False or plain["stream"] == 0
    assert streamed["adapter"] == "support"
    assert streamed["base_model"] == "tiny"
    assert bool(streamed["stream"])
    assert streamed["response_body"]["choices"][0]["message"]["content"] == text
    assert streamed["completion_tokens"] == 8
    assert streamed["finish_reason"] == "length"
    assert streamed["ttft_ms"] is not None
    assert streamed["ttft_ms"] <= streamed["latency_ms"]
    assert streamed["client_key_hash"]
    assert "sk-test" not in str(streamed)


async def test_openai_sdk_async_completions_stream_and_plain(
    sidecar: RunningSidecar, database_url: str
) -> None:
    sdk = openai.AsyncOpenAI(base_url=f"{sidecar.proxy_url}/v1", api_key="k", max_retries=0)
    plain = await sdk.completions.create(model="legal", prompt="say hi", max_tokens=4)
    stream = await sdk.completions.create(model="tiny", prompt="say hi", max_tokens=4, stream=True)
    pieces = [chunk.choices[0].text async for chunk in stream if chunk.choices]
    await sdk.close()
    assert plain.choices[0].text
    rows = wait_for_rows(database_url, 2)
    assert rows[0]["adapter"] == "legal"
    assert rows[1]["response_body"]["choices"][0]["text"] == "".join(pieces)
    assert rows[1]["completion_tokens"] == 4


def test_client_request_id_is_forwarded_and_kept(
    fake: FakeVllm, sidecar: RunningSidecar, database_url: str
) -> None:
    response = httpx.post(
        f"{sidecar.proxy_url}/v1/chat/completions", json=CHAT, headers={"x-request-id": "client-42"}
    )
    assert response.json()["id"] == "chatcmpl-client-42"  # vLLM builds its id from the header
    ours = response.headers["x-request-id"]
    row = wait_for_rows(database_url, 1, "id = :id", id=ours)[0]
    assert row["client_request_id"] == "client-42"
    assert fake.last_request_headers is not None


def test_paths_other_than_completions_pass_through(
    upstream: RunningServer, sidecar: RunningSidecar
) -> None:
    direct = httpx.get(f"{upstream.url}/v1/models").json()
    proxied = httpx.get(f"{sidecar.proxy_url}/v1/models").json()
    assert [card["id"] for card in proxied["data"]] == [card["id"] for card in direct["data"]]
    assert httpx.get(f"{sidecar.proxy_url}/health").status_code == 200
    missing = httpx.get(f"{sidecar.proxy_url}/no/such/path")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})


def test_reserved_prefix_is_not_forwarded(fake: FakeVllm, sidecar: RunningSidecar) -> None:
    before = fake.requests_started
    response = httpx.get(f"{sidecar.proxy_url}/sidecar/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "NotFoundError"
    assert fake.requests_started == before


def test_unknown_model_error_is_relayed_unchanged(
    upstream: RunningServer, sidecar: RunningSidecar
) -> None:
    body = {**CHAT, "model": "nope", "stream": True}
    direct = httpx.post(f"{upstream.url}/v1/chat/completions", json=body)
    proxied = httpx.post(f"{sidecar.proxy_url}/v1/chat/completions", json=body)
    assert (proxied.status_code, proxied.content) == (404, direct.content)
    with pytest.raises(openai.NotFoundError):
        client(sidecar.proxy_url).chat.completions.create(model="nope", messages=MESSAGES)


def test_malformed_json_and_wrong_content_type_get_vllms_400_and_are_logged(
    sidecar: RunningSidecar, database_url: str
) -> None:
    url = f"{sidecar.proxy_url}/v1/chat/completions"
    malformed = httpx.post(
        url, content=b'{"model": "tiny",', headers={"content-type": "application/json"}
    )
    wrong_type = httpx.post(url, content=orjson.dumps(CHAT), headers={"content-type": "text/plain"})
    assert malformed.status_code == wrong_type.status_code == 400
    assert malformed.json()["error"]["type"] == "Bad Request"
    rows = wait_for_rows(database_url, 2)
    assert [row["status"] for row in rows] == [400, 400]
    assert [row["error_kind"] for row in rows] == ["bad_request", "bad_request"]
    assert rows[0]["request_body"] == '{"model": "tiny",'


def test_oversized_body_is_refused_with_413_before_reaching_the_upstream(
    fake: FakeVllm, sidecar: RunningSidecar, database_url: str
) -> None:
    limit = sidecar.sidecar.settings.proxy.max_body_bytes
    before = fake.requests_started
    response = httpx.post(
        f"{sidecar.proxy_url}/v1/chat/completions",
        content=b"x" * (limit + 1),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert "proxy.max_body_bytes" in response.json()["error"]["message"]
    assert fake.requests_started == before
    row = wait_for_rows(database_url, 1)[0]
    assert (row["status"], row["error_kind"]) == (413, "request_too_large")


def test_authorization_passes_through(fake: FakeVllm, sidecar: RunningSidecar) -> None:
    httpx.post(
        f"{sidecar.proxy_url}/v1/chat/completions",
        json=CHAT,
        headers={"authorization": "Bearer abc"},
    )
    headers = {k.lower(): v for k, v in dict(fake.last_request_headers or {}).items()}
    assert headers["authorization"] == "Bearer abc"


def test_admin_port_serves_metrics_health_and_readiness(
    sidecar: RunningSidecar, database_url: str
) -> None:
    httpx.post(f"{sidecar.proxy_url}/v1/chat/completions", json=CHAT)
    wait_for_rows(database_url, 1)
    assert httpx.get(f"{sidecar.admin_url}/healthz").json() == {"status": "ok"}
    ready = wait_for(
        lambda: httpx.get(f"{sidecar.admin_url}/readyz").status_code == 200, what="ready"
    )
    assert ready
    text = httpx.get(f"{sidecar.admin_url}/metrics").text
    for name in CONTRACT_METRICS:
        assert f"# TYPE {name} " in text, name
    assert 'sidecar_requests_total{model="tiny",status="200"} 1.0' in text


def test_stored_rows_keep_every_column(sidecar: RunningSidecar, database_url: str) -> None:
    httpx.post(
        f"{sidecar.proxy_url}/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer k"}
    )
    row = fetch_rows(database_url) or wait_for_rows(database_url, 1)
    record = row[0]
    assert record["method"] == "POST"
    assert record["path"] == "/v1/chat/completions"
    assert record["status"] == 200
    assert record["latency_ms"] > 0
    assert record["upstream_ms"] is not None
    assert record["request_body"] == CHAT
    assert record["response_body"]["object"] == "chat.completion"
    assert record["total_tokens"] == record["prompt_tokens"] + record["completion_tokens"]
    assert record["body_policy"] == "full"
