"""Feedback on the proxy port: stored in SQLite and Postgres, idempotent, owned by the client
key that wrote it, clear 4xx errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sidecar.fake_vllm import FakeVllm
from sidecar.testing.harness import RunningSidecar, start_sidecar
from sidecar.testing.servers import RunningServer
from tests.helpers import sidecar_settings

CHAT = {"model": "support", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
KEY_A = {"authorization": "Bearer sk-client-a"}
KEY_B = {"authorization": "Bearer sk-client-b"}
ADMIN_TOKEN = "admin-s3cret"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def respond(sidecar: RunningSidecar, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{sidecar.proxy_url}/v1/chat/completions", json=CHAT, headers=headers)


def feedback(
    sidecar: RunningSidecar, body: object, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(f"{sidecar.proxy_url}/sidecar/v1/feedback", json=body, headers=headers)


def read_feedback(
    sidecar: RunningSidecar, request_id: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    url = f"{sidecar.proxy_url}/sidecar/v1/feedback"
    return httpx.get(url, params={"request_id": request_id}, headers=headers)


@pytest.fixture
def admin_sidecar(
    upstream: RunningServer, database_url: str, tmp_path: Path
) -> Iterator[RunningSidecar]:
    settings = sidecar_settings(
        upstream.url, database_url, tmp_path / "spool", admin={"token": ADMIN_TOKEN}
    )
    running = start_sidecar(settings)
    yield running
    running.stop()


def test_feedback_round_trip_by_our_id_and_by_completion_id(sidecar: RunningSidecar) -> None:
    response = respond(sidecar)
    ours, completion = response.headers["x-request-id"], response.json()["id"]
    created = feedback(sidecar, {"request_id": ours, "rating": "down", "escalated": True,
                                 "comment": "wrong invoice", "user": "u1"}, KEY_A)  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["score"] == 1
    assert created.json()["satisfied"] is False
    by_completion = feedback(sidecar, {"request_id": completion, "rating": 5, "user": "u2"}, KEY_A)
    assert by_completion.status_code == 201
    assert by_completion.json()["request_id"] == ours
    read = read_feedback(sidecar, completion, KEY_A)
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
    read = read_feedback(sidecar, ours, KEY_A).json()
    assert read["feedback"] == []  # written without a key: only the admin token reads it
    assert again.json()["rating"] == "down"
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


def test_another_client_key_cannot_overwrite_a_rating(sidecar: RunningSidecar) -> None:
    ours = respond(sidecar, KEY_A).headers["x-request-id"]
    first = feedback(sidecar, {"request_id": ours, "rating": "up", "user": "alice"}, KEY_A)
    assert first.status_code == 201
    for headers in (KEY_B, None):  # another key, or none at all
        taken = feedback(sidecar, {"request_id": ours, "rating": "down", "user": "alice",
                                   "comment": "overwritten"}, headers)  # fmt: skip
        assert taken.status_code == 403, taken.text
        assert taken.json()["error"]["type"] == "PermissionDeniedError"
    own = read_feedback(sidecar, ours, KEY_A).json()["feedback"]
    assert [(item["user_id"], item["rating"], item["comment"]) for item in own] == [
        ("alice", "up", None)
    ]
    assert (
        feedback(sidecar, {"request_id": ours, "rating": 4, "user": "alice"}, KEY_A).status_code
        == 200
    )
    other_user = feedback(sidecar, {"request_id": ours, "rating": "down", "user": "bob"}, KEY_B)
    assert other_user.status_code == 201  # key B rates under its own user


def test_a_client_key_reads_only_its_own_feedback_and_the_admin_token_reads_all(
    admin_sidecar: RunningSidecar,
) -> None:
    ours = respond(admin_sidecar, KEY_A).headers["x-request-id"]
    feedback(admin_sidecar, {"request_id": ours, "rating": "up", "user": "alice",
                             "comment": "private to A"}, KEY_A)  # fmt: skip
    feedback(admin_sidecar, {"request_id": ours, "rating": "down", "user": "bob"}, KEY_B)
    feedback(admin_sidecar, {"request_id": ours, "rating": 3})  # no key at all

    def users(headers: dict[str, str]) -> list[str]:
        response = read_feedback(admin_sidecar, ours, headers)
        assert response.status_code == 200, response.text
        return [item["user_id"] for item in response.json()["feedback"]]

    assert users(KEY_A) == ["alice"]
    assert users(KEY_B) == ["bob"]
    assert users(ADMIN) == ["alice", "bob", ""]
    assert users({"authorization": "Bearer sk-someone-else"}) == []


def test_reading_feedback_without_a_key_gets_401(sidecar: RunningSidecar) -> None:
    ours = respond(sidecar).headers["x-request-id"]
    assert feedback(sidecar, {"request_id": ours, "rating": "up", "user": "u"}).status_code == 201
    anonymous = read_feedback(sidecar, ours)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "AuthenticationError"
    assert "u" not in [item.get("user_id") for item in anonymous.json().get("feedback", [])]
