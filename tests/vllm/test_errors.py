"""vLLM's own error bodies reach the client unchanged through the sidecar, and are logged."""

from __future__ import annotations

import httpx
import openai
import pytest

from sidecar.testing.harness import RunningSidecar
from tests.helpers import wait_for_rows
from tests.vllm.server import VllmServer
from tests.vllm.wire import HELLO

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(300)]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_unknown_model_gets_vllms_404_unchanged_and_is_logged_as_404(
    vllm_server: VllmServer,
    sidecar: RunningSidecar,
    proxied: openai.OpenAI,
    sqlite_url: str,
    stream: bool,
) -> None:
    request = {"model": "nope", "messages": HELLO, "max_tokens": 4, "stream": stream}
    want = httpx.post(f"{vllm_server.url}/v1/chat/completions", json=request)
    got = httpx.post(f"{sidecar.proxy_url}/v1/chat/completions", json=request)
    assert got.status_code == want.status_code == 404
    assert got.content == want.content  # no ids in an error body: byte for byte
    assert got.headers["content-type"] == want.headers["content-type"] == "application/json"
    assert got.json() == {
        "error": {
            "message": "The model `nope` does not exist. Valid aliases: tiny.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }

    with pytest.raises(openai.NotFoundError) as raised:
        proxied.chat.completions.create(
            model="nope",
            messages=HELLO,
            max_tokens=4,
            stream=stream,
        )
    assert raised.value.status_code == 404
    assert raised.value.body == want.json()["error"]

    rows = wait_for_rows(sqlite_url, 2)
    # vLLM answers a streaming request for an unknown model with plain JSON: not a stream.
    assert [(row["status"], row["model"], bool(row["stream"])) for row in rows] == [
        (404, "nope", False)
    ] * 2
    assert [row["request_body"]["stream"] for row in rows] == [stream] * 2
    assert all((row["base_model"], row["adapter"]) == (None, None) for row in rows)
    assert rows[0]["response_body"] == want.json()
    assert rows[0]["prompt_tokens"] is None
