"""Slow clients: a body that trickles in, a body that never starts, headers that never end.

The proxy's body timeout is ``proxy.body_timeout_s`` (60 s by default); these tests shorten it on
the running sidecar for their duration.
"""

from __future__ import annotations

import time

import pytest

from sidecar.testing.harness import RunningSidecar
from tests.helpers import wait_for_rows
from tests.hostile.conftest import assert_still_serving, port_of
from tests.hostile.wire import connect, exchange, read_responses, request, wait_closed

BODY_TIMEOUT_S = 0.5
HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    b"content-length: 100\r\n"
)


@pytest.fixture
def short_body_timeout(monkeypatch: pytest.MonkeyPatch, hostile_sidecar: RunningSidecar) -> float:
    monkeypatch.setattr(hostile_sidecar.sidecar.proxy_app, "body_timeout_s", BODY_TIMEOUT_S)
    return BODY_TIMEOUT_S


def test_a_body_that_trickles_in_slower_than_the_timeout_gets_408_and_is_logged(
    hostile_sidecar: RunningSidecar, module_database_url: str, short_body_timeout: float
) -> None:
    sock = connect(port_of(hostile_sidecar.proxy_url))
    sock.sendall(HEAD + b"x-request-id: trickle\r\n\r\n{")
    started = time.monotonic()
    answer = b""
    sock.settimeout(0.1)
    while time.monotonic() - started < 10 * short_body_timeout and b"\r\n\r\n" not in answer:
        try:
            sock.sendall(b" ")  # one byte every 100 ms: alive, but never done
            answer += sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
    sock.close()
    received = read_responses(answer)
    assert received.statuses == [408]
    (row,) = wait_for_rows(module_database_url, 1, "client_request_id = 'trickle'")
    assert (row["status"], row["error_kind"]) == (408, "bad_request")
    assert_still_serving(hostile_sidecar)


def test_a_body_that_never_starts_gets_408_after_the_body_timeout(
    hostile_sidecar: RunningSidecar, short_body_timeout: float
) -> None:
    sock = connect(port_of(hostile_sidecar.proxy_url))
    sock.sendall(HEAD + b"\r\n")  # the 100 promised bytes never come
    sock.settimeout(4 * short_body_timeout)
    try:
        answer = sock.recv(65536)
    except TimeoutError:
        answer = b""
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_fifty_clients_stuck_in_their_headers_do_not_block_an_ordinary_request(
    hostile_sidecar: RunningSidecar,
) -> None:
    stuck = [connect(port_of(hostile_sidecar.proxy_url)) for _ in range(50)]
    try:
        for sock in stuck:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nhost: x\r\nx-slow: ")
        for index, sock in enumerate(stuck):
            sock.sendall(b"%d" % index)  # still no end of headers
        ok = exchange(
            port_of(hostile_sidecar.proxy_url), request(headers=[(b"connection", b"close")])
        )
        assert ok.statuses == [200]
        # the stuck ones are still waited for, and still answered when they finish
        stuck[0].sendall(b"\r\nconnection: close\r\n\r\n")
        answer = wait_closed(stuck[0], 5)
        assert answer is not None
        assert answer.startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in stuck:
            sock.close()


def test_fifty_clients_stuck_in_their_bodies_do_not_block_an_ordinary_request(
    hostile_sidecar: RunningSidecar, short_body_timeout: float
) -> None:
    stuck = [connect(port_of(hostile_sidecar.proxy_url)) for _ in range(50)]
    try:
        for sock in stuck:
            sock.sendall(HEAD + b"\r\n{")
        ok = exchange(
            port_of(hostile_sidecar.proxy_url), request(headers=[(b"connection", b"close")])
        )
        assert ok.statuses == [200]
    finally:
        for sock in stuck:
            sock.close()
    assert_still_serving(hostile_sidecar)
