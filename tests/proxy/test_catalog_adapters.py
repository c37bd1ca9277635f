"""Runtime LoRA changes through the sidecar: the row of a request sent right after a load names
the new adapter, and rows written after an unload still name the adapter that answered."""

from __future__ import annotations

import httpx

from sidecar.testing.harness import RunningSidecar
from tests.helpers import wait_for_rows


def chat(sidecar: RunningSidecar, model: str) -> str:
    response = httpx.post(f"{sidecar.proxy_url}/v1/chat/completions", json={
        "model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})  # fmt: skip
    assert response.status_code == 200, response.text
    return response.headers["x-request-id"]


def test_a_request_right_after_a_load_is_logged_with_its_adapter(
    sidecar: RunningSidecar, database_url: str
) -> None:
    for attempt in range(5):  # no waiting anywhere: the load's answer comes after the refresh
        name = f"fresh-{attempt}"
        loaded = httpx.post(f"{sidecar.proxy_url}/v1/load_lora_adapter",
                            json={"lora_name": name, "lora_path": f"/adapters/{name}"})  # fmt: skip
        assert loaded.status_code == 200, loaded.text
        request_id = chat(sidecar, name)
        (row,) = wait_for_rows(database_url, 1, "id = :id", id=request_id)
        assert (row["adapter"], row["base_model"]) == (name, "tiny")


def test_rows_written_after_an_unload_still_name_their_adapter(
    sidecar: RunningSidecar, database_url: str
) -> None:
    httpx.post(f"{sidecar.proxy_url}/v1/load_lora_adapter",
               json={"lora_name": "brief", "lora_path": "/adapters/brief"})  # fmt: skip
    request_id = chat(sidecar, "brief")
    unloaded = httpx.post(
        f"{sidecar.proxy_url}/v1/unload_lora_adapter", json={"lora_name": "brief"}
    )
    assert unloaded.status_code == 200, unloaded.text
    (row,) = wait_for_rows(database_url, 1, "id = :id", id=request_id)
    assert (row["adapter"], row["base_model"]) == ("brief", "tiny")
