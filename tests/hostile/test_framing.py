"""Request framing attacks over raw sockets: smuggling, pipelining, half requests.

The proxy port must refuse ambiguous framing with a 400 and close the connection, so no byte of
a smuggled request reaches the upstream; well-formed pipelines must be answered in order, each
request logged; a client that vanishes mid-request must not wedge anything.
"""

from __future__ import annotations

import pytest

from sidecar.testing.harness import RunningSidecar
from tests.helpers import wait_for_rows
from tests.hostile.conftest import LIMIT_BYTES, port_of
from tests.hostile.wire import RawUpstream, connect, exchange, request, wait_closed

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n"
HEAD = b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"

AMBIGUOUS_FRAMING = {
    "content-length and chunked": HEAD
    + b"content-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "chunked and content-length": HEAD
    + b"transfer-encoding: chunked\r\ncontent-length: 40\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "two different content-lengths": HEAD
    + b"content-length: 2\r\ncontent-length: 38\r\n\r\n{}"
    + SMUGGLED,
    "xchunked": HEAD + b"transfer-encoding: xchunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" + SMUGGLED,
    "chunked, identity": HEAD
    + b"transfer-encoding: chunked, identity\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    + SMUGGLED,
    "space before the colon": HEAD
    + b"transfer-encoding : chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    + SMUGGLED,
    "folded transfer-encoding": HEAD
    + b"transfer-encoding:\r\n chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    + SMUGGLED,
    "chunk size not hex": HEAD
    + b"transfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    + SMUGGLED,
    "negative chunk size": HEAD
    + b"transfer-encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n"
    + SMUGGLED,
    "chunk size overflow": HEAD
    + b"transfer-encoding: chunked\r\n\r\n10000000000000002\r\n{}\r\n0\r\n\r\n"
    + SMUGGLED,
    "chunk without its CRLF": HEAD
    + b"transfer-encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n"
    + SMUGGLED,
    "content-length with a sign": HEAD + b"content-length: +2\r\n\r\n{}" + SMUGGLED,
    "content-length not a number": HEAD + b"content-length: 2x\r\n\r\n{}" + SMUGGLED,
    "bare LF line endings": b"POST /v1/completions HTTP/1.1\nhost: x\ncontent-length: 2\n\n{}"
    + SMUGGLED,
}


@pytest.mark.parametrize("raw", AMBIGUOUS_FRAMING.values(), ids=AMBIGUOUS_FRAMING.keys())
def test_ambiguous_framing_is_refused_with_400_and_nothing_is_smuggled_upstream(
    raw_sidecar: RunningSidecar, raw_upstream: RawUpstream, raw: bytes
) -> None:
    received = exchange(port_of(raw_sidecar.proxy_url), raw, responses=2)
    assert received.statuses == [400]
    assert received.closed
    assert raw_upstream.forwarded(b"/smuggled", wait_s=0.2) == []
    # the sidecar still serves the next client
    ok = exchange(port_of(raw_sidecar.proxy_url), request(headers=[(b"connection", b"close")]))
    assert ok.statuses == [200]


def test_a_chunked_request_is_forwarded_with_a_content_length_and_no_transfer_encoding(
    raw_sidecar: RunningSidecar, raw_upstream: RawUpstream
) -> None:
    body = b'5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n'
    headers = [(b"transfer-encoding", b"chunked"), (b"x-marker", b"chunked-forward")]
    received = exchange(
        port_of(raw_sidecar.proxy_url),
        request("POST", "/v1/completions", headers, body, content_length=False),
    )
    assert received.statuses == [200]
    (forwarded,) = raw_upstream.forwarded(b"chunked-forward", wait_s=2)
    head, _sep, sent_body = forwarded.partition(b"\r\n\r\n")
    assert sent_body == b'{"a":1}'
    assert b"transfer-encoding" not in head.lower()
    assert b"content-length: 7" in head.lower()


def test_pipelined_requests_are_answered_in_order_and_each_is_logged(
    hostile_sidecar: RunningSidecar, module_database_url: str
) -> None:
    chat = b'{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":2}'
    pipeline = (
        request(headers=[(b"x-request-id", b"pipe-1")])
        + request(
            "POST",
            "/v1/chat/completions",
            [(b"content-type", b"application/json"), (b"x-request-id", b"pipe-2")],
            chat,
        )
        + request("GET", "/nope", [(b"x-request-id", b"pipe-3")])
        + request("GET", "/health", [(b"x-request-id", b"pipe-4"), (b"connection", b"close")])
    )
    received = exchange(port_of(hostile_sidecar.proxy_url), pipeline, responses=4)
    assert received.statuses == [200, 200, 404, 200]
    assert received.responses[0].body.startswith(b'{"object":"list"')
    assert b'"chat.completion"' in received.responses[1].body
    rows = wait_for_rows(module_database_url, 4, "client_request_id LIKE 'pipe-%'")
    logged = {row["client_request_id"]: (row["path"], row["status"]) for row in rows}
    assert logged == {
        "pipe-1": ("/v1/models", 200),
        "pipe-2": ("/v1/chat/completions", 200),
        "pipe-3": ("/nope", 404),
        "pipe-4": ("/health", 200),
    }


def test_a_body_refused_as_too_large_is_skipped_and_the_next_pipelined_request_still_works(
    raw_sidecar: RunningSidecar, raw_upstream: RawUpstream
) -> None:
    # The refused body contains a request; it must be skipped as body bytes, never parsed.
    oversized = (SMUGGLED * (LIMIT_BYTES // len(SMUGGLED) + 10))[: LIMIT_BYTES + 100]
    pipeline = (
        request(headers=[(b"x-marker", b"before-413")])
        + request("POST", "/v1/completions", [(b"content-type", b"application/json")], oversized)
        + request(headers=[(b"x-marker", b"after-413"), (b"connection", b"close")])
    )
    received = exchange(port_of(raw_sidecar.proxy_url), pipeline, responses=3)
    assert received.statuses == [200, 413, 200]
    assert b"proxy.max_body_bytes" in received.responses[1].body
    assert raw_upstream.forwarded(b"after-413", wait_s=2)
    assert raw_upstream.forwarded(b"/smuggled") == []


HALF_REQUESTS = {
    "request line only": b"POST /v1/chat/completions HTTP/1.1\r\n",
    "half the headers": b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-ty",
    "headers and half the body": b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
    b"x-request-id: half-body\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n"
    b'{"model":"tiny",',
    "half a chunk": b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
    b'x-request-id: half-chunk\r\ntransfer-encoding: chunked\r\n\r\n40\r\n{"model"',
}


@pytest.mark.parametrize("raw", HALF_REQUESTS.values(), ids=HALF_REQUESTS.keys())
def test_a_client_that_sends_half_a_request_and_closes_leaves_the_sidecar_serving(
    hostile_sidecar: RunningSidecar, raw: bytes
) -> None:
    sock = connect(port_of(hostile_sidecar.proxy_url))
    sock.sendall(raw)
    sock.close()
    ok = exchange(port_of(hostile_sidecar.proxy_url), request(headers=[(b"connection", b"close")]))
    assert ok.statuses == [200]


def test_a_half_sent_body_is_logged_as_a_client_disconnect(
    hostile_sidecar: RunningSidecar, module_database_url: str
) -> None:
    sock = connect(port_of(hostile_sidecar.proxy_url))
    sock.sendall(HALF_REQUESTS["headers and half the body"].replace(b"half-body", b"gone-body"))
    sock.close()
    (row,) = wait_for_rows(module_database_url, 1, "client_request_id = 'gone-body'")
    assert row["status"] == 499
    assert row["error_kind"] == "client_disconnected"


def test_an_asterisk_form_request_target_gets_a_4xx_not_a_sidecar_500(
    hostile_sidecar: RunningSidecar,
) -> None:
    received = exchange(
        port_of(hostile_sidecar.proxy_url), request("OPTIONS", "*", [(b"connection", b"close")])
    )
    assert len(received.statuses) == 1
    assert 400 <= received.statuses[0] < 500


def test_a_connection_closed_after_a_400_stays_closed(hostile_sidecar: RunningSidecar) -> None:
    sock = connect(port_of(hostile_sidecar.proxy_url))
    sock.sendall(b"GET /v1/models HTTP/1.1\r\nhost: x\r\nx-bad: a\x00b\r\n\r\n" + SMUGGLED)
    sent_back = wait_closed(sock, 2.0)
    sock.close()
    assert sent_back is not None, "the server kept a connection with a broken request open"
    assert sent_back.startswith(b"HTTP/1.1 400 ")
    assert sent_back.count(b"HTTP/1.1 ") == 1
