"""``/sidecar/v1/feedback`` under hypothesis-made bodies and queries: 2xx or 4xx, never a 5xx."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.testing.harness import RunningSidecar, start_sidecar
from sidecar.testing.servers import RunningServer
from tests.helpers import sidecar_settings, wait_for_rows
from tests.hostile.conftest import count_case, examples

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
ANSWERS = {200, 201, 400, 403, 404, 413, 422}
KEYS: list[bytes | None] = [None, b"Bearer sk-fuzz", b"Bearer caf\xe9", b"\xff\xfe", b"Bearer"]


@pytest.fixture(scope="module")
def logged_ids(
    hostile_sidecar: RunningSidecar, module_database_url: str, http: httpx.Client
) -> list[str]:
    """The sidecar id and the completion id of one logged request."""
    response = http.post(
        f"{hostile_sidecar.proxy_url}/v1/chat/completions",
        json=CHAT,
        headers={"x-request-id": "feedback-target"},
    )
    wait_for_rows(module_database_url, 1, "client_request_id = 'feedback-target'")
    return [response.headers["x-request-id"], response.json()["id"]]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)


def feedback_bodies(ids: list[str]) -> st.SearchStrategy[bytes]:
    fields: dict[str, st.SearchStrategy[Any]] = {
        "request_id": st.sampled_from(ids) | st.text(max_size=250) | json_values,
        "rating": st.sampled_from(["up", "down", "UP", "Down", 1, 5, 0, 6, -1, 3.0, True, "3"])
        | json_values,
        "escalated": st.booleans() | json_values,
        "comment": st.text(max_size=50) | st.text(min_size=3990, max_size=4010) | json_values,
        "user": st.text(max_size=210) | json_values,
        "unexpected": json_values,
    }
    objects = st.fixed_dictionaries({}, optional=fields)
    well_formed = st.fixed_dictionaries(
        {
            "request_id": st.sampled_from(ids) | st.text(min_size=1, max_size=200),
            "rating": st.sampled_from(["up", "down", 1, 2, 3, 4, 5]),
        },
        optional={
            "escalated": st.booleans(),
            "comment": st.none() | st.text(max_size=200),
            "user": st.none() | st.text(max_size=200),
        },
    )
    not_json = st.text(max_size=60).map(str.encode)  # valid UTF-8; usually not JSON
    return st.one_of(
        well_formed.map(orjson.dumps),
        objects.map(orjson.dumps),
        json_values.map(orjson.dumps),
        not_json,
    )


def test_any_json_feedback_body_gets_a_2xx_or_4xx(
    hostile_sidecar: RunningSidecar, logged_ids: list[str], http: httpx.Client
) -> None:
    url = f"{hostile_sidecar.proxy_url}/sidecar/v1/feedback"
    seen: set[int] = set()

    @examples(250)
    @given(body=feedback_bodies(logged_ids))
    def check(body: bytes) -> None:
        count_case("feedback: JSON bodies answered 2xx/4xx")
        response = http.post(url, content=body, headers={"content-type": "application/json"})
        assert response.status_code in ANSWERS, (response.status_code, response.text)
        seen.add(response.status_code)
        if response.status_code >= 400:
            assert response.json()["error"]["code"] == response.status_code

    check()
    assert {400, 404, 422} <= seen  # refused bodies of each kind were exercised ...
    assert seen & {200, 201}  # ... and stored ones


def test_any_feedback_lookup_gets_a_2xx_or_4xx(
    hostile_sidecar: RunningSidecar, logged_ids: list[str], http: httpx.Client
) -> None:
    url = f"{hostile_sidecar.proxy_url}/sidecar/v1/feedback"

    @examples(150)
    @given(
        request_id=st.sampled_from(logged_ids) | st.text(max_size=300),
        key=st.sampled_from(KEYS),
    )
    def check(request_id: str, key: bytes | None) -> None:
        count_case("feedback: lookups answered 2xx/4xx")
        headers = {} if key is None else {b"authorization": key}
        response = http.get(url, params={"request_id": request_id}, headers=headers)
        expected = {401} if key is None else {200, 400, 404}
        assert response.status_code in expected, (key, response.status_code, response.text)

    check()


def test_a_feedback_body_over_64_kib_gets_413(
    hostile_sidecar: RunningSidecar, http: httpx.Client
) -> None:
    body = orjson.dumps({"request_id": "x", "rating": "up", "comment": "c" * 70_000})
    response = http.post(f"{hostile_sidecar.proxy_url}/sidecar/v1/feedback", content=body)
    assert response.status_code == 413


def test_deeply_nested_feedback_json_gets_a_4xx(
    hostile_sidecar: RunningSidecar, http: httpx.Client
) -> None:
    for body in (b"[" * 60_000, b'{"request_id":' + b"[" * 30_000 + b"]" * 30_000 + b"}"):
        response = http.post(f"{hostile_sidecar.proxy_url}/sidecar/v1/feedback", content=body)
        assert 400 <= response.status_code < 500


def test_invalid_utf8_in_a_feedback_string_gets_400(
    hostile_sidecar: RunningSidecar, logged_ids: list[str], http: httpx.Client
) -> None:
    body = b'{"request_id":"%s","rating":"up","comment":"caf\xe9"}' % logged_ids[0].encode()
    response = http.post(f"{hostile_sidecar.proxy_url}/sidecar/v1/feedback", content=body)
    assert response.status_code == 400


@pytest.fixture
def postgres_sidecar(
    upstream: RunningServer, make_postgres_database: Callable[[], str], tmp_path: Path
) -> Iterator[tuple[RunningSidecar, str]]:
    database_url = make_postgres_database()
    running = start_sidecar(sidecar_settings(upstream.url, database_url, tmp_path / "spool"))
    yield running, database_url
    running.stop()


@pytest.mark.postgres
def test_a_nul_in_the_feedback_request_id_gets_a_4xx_on_postgres(
    postgres_sidecar: tuple[RunningSidecar, str], http: httpx.Client
) -> None:
    sidecar, _ = postgres_sidecar
    url = f"{sidecar.proxy_url}/sidecar/v1/feedback"
    posted = http.post(url, content=b'{"request_id":"a\\u0000b","rating":"up"}')
    key = {"authorization": "Bearer sk-fuzz"}
    looked_up = http.get(url, params={"request_id": "a\x00b"}, headers=key)
    assert (posted.status_code, looked_up.status_code) == (404, 404)


@pytest.mark.postgres
def test_a_nul_in_feedback_text_is_stored_or_refused_on_postgres(
    postgres_sidecar: tuple[RunningSidecar, str], http: httpx.Client
) -> None:
    sidecar, database_url = postgres_sidecar
    chat = http.post(f"{sidecar.proxy_url}/v1/chat/completions", json=CHAT)
    wait_for_rows(database_url, 1)
    body = {
        "request_id": chat.headers["x-request-id"],
        "rating": "down",
        "comment": "x\x00y",
        "user": "u\x00",
    }
    response = http.post(f"{sidecar.proxy_url}/sidecar/v1/feedback", json=body)
    assert response.status_code in {201, 422}


def test_feedback_with_non_ascii_authorization_bytes_gets_a_2xx_or_4xx(
    hostile_sidecar: RunningSidecar, logged_ids: list[str], http: httpx.Client
) -> None:
    url = f"{hostile_sidecar.proxy_url}/sidecar/v1/feedback"
    for key in KEYS[2:]:
        body = {"request_id": logged_ids[0], "rating": "up", "user": f"raw-{key!r}"}
        posted = http.post(url, json=body, headers={b"authorization": key or b""})
        assert posted.status_code in {200, 201}, posted.text
        read = http.get(
            url, params={"request_id": logged_ids[0]}, headers={b"authorization": key or b""}
        )
        assert read.status_code == 200, read.text
        assert [item["user_id"] for item in read.json()["feedback"]] == [body["user"]]
