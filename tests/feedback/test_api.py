"""Feedback on the proxy port: stored in SQLite and Postgres, idempotent, clear 4xx errors."""

from __future__ import annotations

import httpx
import pytest

from sidecar.testing.fake_vllm import FakeVllm
from sidecar.testing.harness import RunningSidecar

CHAT = {"model": "support", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


def respond(sidecar: RunningSidecar) -> httpx.Response:
    return httpx.post(f"{sidecar.proxy_url}/v1/chat/completions", json=CHAT)


def feedback(sidecar: RunningSidecar, body: object) -> httpx.Response:
    return httpx.post(f"{sidecar.proxy_url}/sidecar/v1/feedback", json=body)


def test_feedback_round_trip_by_our_id_and_by_completion_id(sidecar: RunningSidecar) -> None:
    response = respond(sidecar)
    ours, completion = response.headers["x-request-id"], response.json()["id"]
    created = feedback(sidecar, {"request_id": ours, "rating": "down", "escalated": True,
                                 "comment": "wrong invoice", "user": "u1"})  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["score"] == 1
    assert created.json()["satisfied"] is False
    by_completion = feedback(sidecar, {"request_id": completion, "rating": 5, "user": "u2"})
    assert by_completion.status_code == 201
    assert by_completion.json()["request_id"] == ours
    read = httpx.get(f"{sidecar.proxy_url}/sidecar/v1/feedback", params={"request_id": completion})
    assert read.status_code == 200
    got = [(item["user_id"], item["rating"], item["escalated"]) for item in read.json()["feedback"]]
    assert got == [("u1", "down", True), ("u2", "5", False)]


def test_feedback_is_idempotent_per_request_and_user(
    sidecar: RunningSidecar, database_url: str
) -> None:
    ours = respond(sidecar).headers["x-request-id"]
    assert feedback(sidecar, {"request_id": ours, "rating": "up", "user": "u"}).status_code == 201
    again = feedback(sidecar, {"request_id": ours, "rating": "down", "user": "u"})
    assert again.status_code == 200
    read = httpx.get(f"{sidecar.proxy_url}/sidecar/v1/feedback", params={"request_id": ours}).json()
    assert [item["rating"] for item in read["feedback"]] == ["down"]
    metrics = httpx.get(f"{sidecar.admin_url}/metrics").text
    assert 'sidecar_feedback_total{rating="up"} 1.0' in metrics
    assert 'sidecar_feedback_total{rating="down"} 1.0' in metrics


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"rating": "up"}, 422, "request_id"),
        ({"request_id": "x", "rating": 7}, 422, "rating"),
        ({"request_id": "x", "rating": "meh"}, 422, "rating"),
        ({"request_id": "x", "rating": True}, 422, "rating"),
        ({"request_id": "x", "rating": "up", "comment": "c" * 4001}, 422, "comment"),
        ({"request_id": "x", "rating": "up", "stars": 3}, 422, "stars"),
        ({"request_id": "x", "rating": "up", "escalated": "yes"}, 422, "escalated"),
    ],
)
def test_bad_bodies_get_422_naming_the_field(
    sidecar: RunningSidecar, body: dict[str, object], status: int, param: str
) -> None:
    response = feedback(sidecar, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["message"].startswith(param)


def test_malformed_oversized_and_unknown(
    sidecar: RunningSidecar, fake: FakeVllm, database_url: str
) -> None:
    url = f"{sidecar.proxy_url}/sidecar/v1/feedback"
    malformed = httpx.post(
        url, content=b'{"request_id": ', headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert httpx.post(url, content=b"x" * 70_000).status_code == 413
    unknown = feedback(sidecar, {"request_id": "f" * 32, "rating": "up"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["param"] == "request_id"
    assert httpx.get(url).status_code == 400  # request_id is required
    assert fake.requests_started == 0  # nothing under /sidecar/ reaches the upstream
