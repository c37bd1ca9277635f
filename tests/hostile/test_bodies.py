"""Hostile bodies: too large, deeply nested, invalid UTF-8, NUL bytes, and hypothesis-made ones.

Expected: a 413 from the sidecar over ``proxy.max_body_bytes`` (declared or streamed), otherwise
the status the upstream gives to the same bytes directly; every request that reached the proxy
is logged; refused bodies do not accumulate in memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.testing.harness import RunningSidecar
from sidecar.testing.servers import RunningServer
from tests.helpers import wait_for_rows
from tests.hostile.conftest import LIMIT_BYTES, assert_still_serving, count_case, examples, port_of
from tests.hostile.wire import exchange, request

CHAT_PATH = "/v1/chat/completions"
JSON = [(b"content-type", b"application/json")]
CHAT: dict[str, Any] = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
_ids = itertools.count()


def rss_mib() -> float:
    """Resident memory of this process (the sidecar under test runs in one of its threads)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def chunks_of(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_declared_body_over_the_limit_gets_413_without_being_read(
    hostile_sidecar: RunningSidecar, module_database_url: str
) -> None:
    head = request(
        "POST",
        CHAT_PATH,
        [*JSON, (b"x-request-id", b"declared-413"), (b"content-length", b"%d" % (LIMIT_BYTES + 1))],
    )
    received = exchange(port_of(hostile_sidecar.proxy_url), head)  # the body is never sent
    assert received.statuses == [413]
    error = orjson.loads(received.responses[0].body)["error"]
    assert error["code"] == 413
    assert "proxy.max_body_bytes" in error["message"]
    (row,) = wait_for_rows(module_database_url, 1, "client_request_id = 'declared-413'")
    assert (row["status"], row["error_kind"]) == (413, "request_too_large")


def test_a_streamed_body_over_the_limit_gets_413(
    hostile_sidecar: RunningSidecar, http: httpx.Client
) -> None:
    body = b"x" * (LIMIT_BYTES + 1)
    response = http.post(
        f"{hostile_sidecar.proxy_url}{CHAT_PATH}", content=chunks_of(body), headers=dict(JSON)
    )
    assert response.status_code == 413
    assert response.headers["x-request-id"]


def test_a_body_exactly_at_the_limit_is_forwarded(
    hostile_sidecar: RunningSidecar, fake_upstream: RunningServer
) -> None:
    padding = LIMIT_BYTES - len(orjson.dumps({**CHAT, "max_tokens": 2, "user": ""}))
    body = orjson.dumps({**CHAT, "max_tokens": 2, "user": "u" * padding})
    assert len(body) == LIMIT_BYTES
    raw = request("POST", CHAT_PATH, JSON, body)
    via_sidecar = exchange(port_of(hostile_sidecar.proxy_url), raw)
    assert via_sidecar.statuses == exchange(fake_upstream.port, raw).statuses == [200]


DEEP_BODIES = {
    "100k open brackets": b"[" * 100_000,
    "100k balanced brackets in messages": b'{"model":"tiny","messages":'
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}",
    "100k nested objects": b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
}


@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
def test_deeply_nested_json_is_relayed_as_the_upstream_answers_it(
    hostile_sidecar: RunningSidecar,
    fake_upstream: RunningServer,
    module_database_url: str,
    body: bytes,
) -> None:
    request_id = b"deep-%d" % next(_ids)
    raw = request("POST", CHAT_PATH, [*JSON, (b"x-request-id", request_id)], body)
    via_sidecar = exchange(port_of(hostile_sidecar.proxy_url), raw)
    straight = exchange(fake_upstream.port, raw)
    assert via_sidecar.statuses == straight.statuses
    (response,) = via_sidecar.responses
    assert response.header(b"x-request-id") is not None  # relayed, not the server's own 500
    assert response.body == straight.responses[0].body
    (row,) = wait_for_rows(
        module_database_url, 1, "client_request_id = :id", id=request_id.decode()
    )
    assert row["status"] == response.status
    if response.status >= 500:  # the fake vLLM itself fails on some of these (see the report)
        assert row["error_kind"] == "upstream_error"
    assert_still_serving(hostile_sidecar)


ODD_BODIES = {
    "invalid UTF-8 in a string": b'{"model":"tiny","messages":[{"role":"user","content":"\xff\xfe\xc3("}]}',
    "raw NUL byte in a string": b'{"model":"tiny","messages":[{"role":"user","content":"a\x00b"}]}',
    "escaped NUL everywhere": b'{"model":"tiny\\u0000","user":"\\u0000","messages":'
    b'[{"role":"user","content":"\\u0000"}],"max_tokens":2,"\\u0000":"\\u0000"}',
    "lone surrogate escape": b'{"model":"tiny","messages":[{"role":"user","content":"\\ud800"}],"max_tokens":2}',
    "BOM before the JSON": b'\xef\xbb\xbf{"model":"tiny","messages":[{"role":"user","content":"hi"}]}',
    "UTF-16 JSON": '{"model":"tiny","messages":[]}'.encode("utf-16"),
    "NUL bytes only": b"\x00" * 1000,
    "not JSON at all": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
    "huge number": b'{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":1'
    + b"0" * 5000
    + b"}",
    "duplicate keys": b'{"model":"tiny","model":"nope","messages":[{"role":"user","content":"hi"}],"max_tokens":2}',
}


def test_odd_bodies_are_answered_as_the_upstream_answers_them_and_all_are_logged(
    sidecar: RunningSidecar, upstream: RunningServer, database_url: str
) -> None:
    for name, body in ODD_BODIES.items():
        raw = request("POST", CHAT_PATH, [*JSON, (b"x-request-id", name.encode())], body)
        via_sidecar = exchange(port_of(sidecar.proxy_url), raw)
        straight = exchange(upstream.port, raw)
        assert via_sidecar.statuses == straight.statuses, name
        assert via_sidecar.statuses[0] < 500, name
    rows = wait_for_rows(database_url, len(ODD_BODIES))
    assert {row["client_request_id"] for row in rows} == set(ODD_BODIES)
    # every body is kept (on Postgres with NUL turned into U+FFFD, which it cannot store)
    assert all(row["request_body"] is not None for row in rows)


@pytest.mark.parametrize("stop", [True, 215, 2.5])
def test_the_fake_vllm_answers_a_stop_of_the_wrong_type_with_400(
    fake_upstream: RunningServer, stop: object
) -> None:
    body = orjson.dumps({**CHAT, "max_tokens": 2, "stop": stop})
    received = exchange(fake_upstream.port, request("POST", CHAT_PATH, JSON, body))
    assert received.statuses == [400]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
CHAT_FIELDS = [
    "model",
    "messages",
    "temperature",
    "top_p",
    "stop",
    "stream_options",
    "seed",
    "response_format",
    "logprobs",
    "user",
    "tools",
    "n_unknown_field",
]


@st.composite
def chat_like_bodies(draw: st.DrawFn) -> bytes:
    """A valid chat request with one field replaced by an arbitrary JSON value."""
    body: dict[str, Any] = {**CHAT, "max_tokens": 3, "stream": draw(st.booleans())}
    body[draw(st.sampled_from(CHAT_FIELDS))] = draw(json_values)
    return orjson.dumps(body)


bodies = st.one_of(
    chat_like_bodies(),
    json_values.map(orjson.dumps),
    st.binary(max_size=2000),
)
content_types = st.sampled_from(
    [
        b"application/json",
        b"application/json; charset=utf-8",
        b"text/plain",
        b"application/x-www-form-urlencoded",
        b"APPLICATION/JSON",
        None,
    ]
)


def test_arbitrary_bodies_get_the_upstream_answer_and_every_one_is_logged(
    hostile_sidecar: RunningSidecar, fake_upstream: RunningServer, module_database_url: str
) -> None:
    proxy = port_of(hostile_sidecar.proxy_url)
    sent: list[str] = []
    upstream_failures: list[str] = []

    @examples(250)
    @given(
        body=bodies,
        content_type=content_types,
        path=st.sampled_from([CHAT_PATH, "/v1/completions"]),
    )
    def check(body: bytes, content_type: bytes | None, path: str) -> None:
        count_case("bodies: same status as a direct call, logged (fake vLLM)")
        request_id = f"fuzz-body-{next(_ids)}"
        headers = [(b"x-request-id", request_id.encode()), (b"connection", b"close")]
        if content_type is not None:
            headers.append((b"content-type", content_type))
        raw = request("POST", path, headers, body)
        via_sidecar = exchange(proxy, raw, timeout_s=5)
        straight = exchange(fake_upstream.port, raw, timeout_s=5)
        assert via_sidecar.statuses == straight.statuses
        (response,) = via_sidecar.responses
        if response.status >= 500:  # the fake vLLM fails on some bodies itself (see the report)
            assert response.header(b"x-request-id") is not None  # relayed, not the sidecar's own
            upstream_failures.append(request_id)
        sent.append(request_id)

    check()
    rows = wait_for_rows(module_database_url, len(sent), "client_request_id LIKE 'fuzz-body-%'")
    assert sorted(row["client_request_id"] for row in rows) == sorted(sent)
    assert {row["client_request_id"] for row in rows if row["error_kind"] == "upstream_error"} == (
        set(upstream_failures)
    )


def test_two_hundred_oversized_bodies_leave_memory_bounded(hostile_sidecar: RunningSidecar) -> None:
    oversized = b"x" * (2 * LIMIT_BYTES)
    url = f"{hostile_sidecar.proxy_url}{CHAT_PATH}"

    def attempt(client: httpx.Client, index: int) -> None:
        content = oversized if index % 2 else chunks_of(oversized)  # declared, then streamed
        assert client.post(url, content=content, headers=dict(JSON)).status_code == 413

    with httpx.Client(timeout=30) as client:
        for index in range(20):  # warm up allocator arenas and connection pools
            attempt(client, index)
        before = rss_mib()
        for index in range(200):
            attempt(client, index)
            count_case("oversized bodies refused with 413")
        grown = rss_mib() - before
    # 200 x 512 KiB went through; a leak of even the refused prefixes would be > 25 MiB.
    assert grown < 24, f"RSS grew by {grown:.1f} MiB over 200 refused bodies"
    assert_still_serving(hostile_sidecar)
