"""Hostile headers: long, many, invalid bytes, NUL, and arbitrary ones from hypothesis.

Expected: the HTTP parser refuses what HTTP forbids (400, connection closed), everything else is
forwarded and answered as the upstream would answer it directly; never a 5xx, never a crash.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.proxy.headers import HOP_BY_HOP
from sidecar.testing.harness import RunningSidecar
from sidecar.testing.servers import RunningServer
from tests.hostile.conftest import assert_still_serving, count_case, examples, port_of
from tests.hostile.wire import RawUpstream, connect, exchange, request, wait_closed

CHAT = b'{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":2}'
_marks = itertools.count()


def test_a_64_kib_header_value_is_forwarded_whole(
    raw_sidecar: RunningSidecar, raw_upstream: RawUpstream
) -> None:
    value = b"v" * (64 * 1024)
    received = exchange(
        port_of(raw_sidecar.proxy_url),
        request(headers=[(b"x-long", value), (b"x-marker", b"long")]),
    )
    assert received.statuses == [200]
    (forwarded,) = raw_upstream.forwarded(b"x-marker: long", wait_s=2)
    assert b"x-long: " + value + b"\r\n" in forwarded


def test_five_thousand_headers_are_forwarded_and_answered(
    hostile_sidecar: RunningSidecar, fake_upstream: RunningServer
) -> None:
    raw = request(headers=[(b"x-h%d" % index, b"v") for index in range(5000)])
    via_sidecar = exchange(port_of(hostile_sidecar.proxy_url), raw)
    assert via_sidecar.statuses == exchange(fake_upstream.port, raw).statuses == [200]


FORBIDDEN_VALUES = {
    "NUL": b"a\x00b",
    "bare CR": b"a\rb",
    "DEL": b"a\x7fb",
    "control character": b"a\x01b",
    "escape": b"\x1b[31mred",
}


@pytest.mark.parametrize("value", FORBIDDEN_VALUES.values(), ids=FORBIDDEN_VALUES.keys())
def test_control_bytes_in_a_header_value_are_refused_with_400_before_the_proxy(
    hostile_sidecar: RunningSidecar, module_database_url: str, value: bytes
) -> None:
    received = exchange(
        port_of(hostile_sidecar.proxy_url),
        request(headers=[(b"x-request-id", b"ctl-header"), (b"x-evil", value)]),
        responses=2,
    )
    assert received.statuses == [400]
    assert received.closed
    assert_still_serving(hostile_sidecar)


def test_invalid_utf8_in_a_header_value_is_forwarded_and_answered(
    hostile_sidecar: RunningSidecar, fake_upstream: RunningServer
) -> None:
    raw = request(
        headers=[(b"x-user", b"\xff\xfe\xc3\x28 caf\xe9"), (b"x-request-id", b"\xe9\xff")]
    )
    via_sidecar = exchange(port_of(hostile_sidecar.proxy_url), raw)
    assert via_sidecar.statuses == exchange(fake_upstream.port, raw).statuses == [200]


def test_a_utf8_header_value_reaches_the_upstream_byte_for_byte(
    raw_sidecar: RunningSidecar, raw_upstream: RawUpstream
) -> None:
    value = "José Müller".encode()
    received = exchange(
        port_of(raw_sidecar.proxy_url),
        request(headers=[(b"x-user", value), (b"x-marker", b"utf8")]),
    )
    assert received.statuses == [200]
    (forwarded,) = raw_upstream.forwarded(b"x-marker: utf8", wait_s=2)
    assert b"x-user: " + value + b"\r\n" in forwarded


def test_an_8_mib_header_block_is_refused_before_it_is_buffered(
    hostile_sidecar: RunningSidecar,
) -> None:
    sock = connect(port_of(hostile_sidecar.proxy_url), timeout_s=10)
    refused_while_sending = False
    try:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nhost: x\r\nx-big: ")
        for _ in range(128):
            sock.sendall(b"a" * 65536)
        sock.sendall(b"\r\nconnection: close\r\n\r\n")
    except OSError:
        refused_while_sending = True
    answer = wait_closed(sock, 10)
    sock.close()
    assert refused_while_sending or (answer or b"").startswith((b"HTTP/1.1 431", b"HTTP/1.1 400"))
    assert_still_serving(hostile_sidecar)


_TOKEN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
_SKIPPED_NAMES = {name.decode() for name in HOP_BY_HOP} | {"host", "content-length", "expect"}
header_names = st.text(_TOKEN, min_size=1, max_size=30).filter(
    lambda name: name.lower() not in _SKIPPED_NAMES and not name.lower().startswith("x-fake-")
)
header_values = st.binary(max_size=300).map(
    lambda raw: bytes(byte for byte in raw if byte == 9 or 32 <= byte <= 126 or byte >= 128)
)


def test_arbitrary_headers_get_the_answer_the_upstream_gives_directly(
    hostile_sidecar: RunningSidecar, fake_upstream: RunningServer
) -> None:
    proxy = port_of(hostile_sidecar.proxy_url)

    @examples(150)
    @given(
        headers=st.lists(st.tuples(header_names.map(str.encode), header_values), max_size=20),
        chat=st.booleans(),
    )
    def check(headers: list[tuple[bytes, bytes]], chat: bool) -> None:
        count_case("headers: same status as a direct call (fake vLLM)")
        raw = (
            request(
                "POST",
                "/v1/chat/completions",
                [(b"content-type", b"application/json"), *headers],
                CHAT,
            )
            if chat
            else request(headers=headers)
        )
        via_sidecar = exchange(proxy, raw)
        straight = exchange(fake_upstream.port, raw)
        assert via_sidecar.statuses == straight.statuses
        assert all(status < 500 for status in via_sidecar.statuses)

    check()
