"""LoRA adapters on the real vLLM: rows name the base model and adapter; runtime load/unload works
through the sidecar, and the model list passes through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from sidecar.testing.harness import RunningSidecar
from tests.helpers import wait_for_rows
from tests.vllm.server import VllmServer
from tests.vllm.wire import HELLO

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(300)]


def ask(client: openai.OpenAI, model: str) -> str:
    completion = client.chat.completions.create(
        model=model,
        messages=HELLO,
        max_tokens=8,
        temperature=0,
    )
    assert completion.model == model
    return completion.choices[0].message.content or ""


def test_base_model_and_startup_adapters_are_logged_with_base_and_adapter(
    proxied: openai.OpenAI, sqlite_url: str
) -> None:
    answers = {model: ask(proxied, model) for model in ("tiny", "support", "legal")}
    assert len(set(answers.values())) == 3  # each adapter really changes the output

    rows = wait_for_rows(sqlite_url, 3)
    assert [(row["model"], row["base_model"], row["adapter"]) for row in rows] == [
        ("tiny", "tiny", None),
        ("support", "tiny", "support"),
        ("legal", "tiny", "legal"),
    ]
    assert all(row["completion_tokens"] == 8 for row in rows)


def model_cards(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``/v1/models`` cards less what vLLM makes anew per call (``created``, permission ids)."""
    return [
        {key: value for key, value in card.items() if key not in {"created", "permission"}}
        for card in body["data"]
    ]


def test_models_list_passes_through(
    vllm_server: VllmServer, sidecar: RunningSidecar, proxied: openai.OpenAI
) -> None:
    want = httpx.get(f"{vllm_server.url}/v1/models")
    got = httpx.get(f"{sidecar.proxy_url}/v1/models")
    assert got.status_code == want.status_code == 200
    assert got.headers["content-type"] == want.headers["content-type"]
    assert model_cards(got.json()) == model_cards(want.json())

    cards = {card.id: card for card in proxied.models.list()}
    assert set(cards) >= {"tiny", "support", "legal"}
    assert (cards["tiny"].model_extra or {})["parent"] is None
    assert (cards["support"].model_extra or {})["parent"] == "tiny"
    assert (cards["legal"].model_extra or {})["max_model_len"] is None


def load(http: httpx.Client, data_dir: Path) -> httpx.Response:
    lora_path = str(data_dir / "lora-extra")
    return http.post("/v1/load_lora_adapter", json={"lora_name": "extra", "lora_path": lora_path})


def unload(http: httpx.Client) -> httpx.Response:
    return http.post("/v1/unload_lora_adapter", json={"lora_name": "extra"})


def test_runtime_lora_load_and_unload_through_the_sidecar(
    vllm_server: VllmServer, sidecar: RunningSidecar, proxied: openai.OpenAI, sqlite_url: str
) -> None:
    with httpx.Client(base_url=sidecar.proxy_url, timeout=60) as http:
        loaded = load(http, vllm_server.data_dir)
        try:
            assert loaded.status_code == 200, loaded.text
            assert loaded.text == "Success: LoRA adapter 'extra' added successfully."
            again = load(http, vllm_server.data_dir)
            assert again.status_code == 400
            assert again.json()["error"]["type"] == "InvalidUserInput"

            cards = {card.id: card for card in proxied.models.list()}
            assert (cards["extra"].model_extra or {})["parent"] == "tiny"
            # The sidecar refreshed its model list before passing the load's answer on.
            assert "extra" in sidecar.sidecar.catalog.known()
            assert ask(proxied, "extra")
        finally:
            unloaded = unload(http)
        assert unloaded.status_code == 200, unloaded.text
        assert unloaded.text == "Success: LoRA adapter 'extra' removed successfully."

    with pytest.raises(openai.NotFoundError):
        ask(proxied, "extra")

    rows = wait_for_rows(sqlite_url, 6)
    by_path = [(row["method"], row["path"], row["status"]) for row in rows]
    assert ("POST", "/v1/load_lora_adapter", 200) in by_path
    assert ("POST", "/v1/load_lora_adapter", 400) in by_path
    assert ("POST", "/v1/unload_lora_adapter", 200) in by_path
    chats = [row for row in rows if row["path"] == "/v1/chat/completions"]
    served = chats[0]  # written after the unload: still named for the adapter that answered
    assert [(row["model"], row["status"]) for row in chats] == [("extra", 200), ("extra", 404)]
    assert (served["base_model"], served["adapter"]) == ("tiny", "extra")
    assert served["completion_tokens"] == 8


def test_a_request_right_after_a_runtime_load_is_logged_with_its_adapter(
    vllm_server: VllmServer, sidecar: RunningSidecar, proxied: openai.OpenAI, sqlite_url: str
) -> None:
    with httpx.Client(base_url=sidecar.proxy_url, timeout=60) as http:
        assert load(http, vllm_server.data_dir).status_code == 200
        try:
            ask(proxied, "extra")
        finally:
            assert unload(http).status_code == 200
    chat = wait_for_rows(sqlite_url, 1, "path = '/v1/chat/completions'")[0]
    assert (chat["base_model"], chat["adapter"]) == ("tiny", "extra")
