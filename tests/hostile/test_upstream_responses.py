"""A hostile upstream: malformed responses become the sidecar's 502, never a 500 or a hang.

The upstream is :class:`RawUpstream`, answering canned bytes no real server would send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import orjson
import pytest

from sidecar.testing.harness import RunningSidecar
from tests.helpers import fetch_rows, wait_for
from tests.hostile.conftest import port_of
from tests.hostile.wire import OK_RESPONSE, RawUpstream, exchange, request

BODY = b'{"a":1}'
OK_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"


@pytest.fixture
def answer_with(raw_upstream: RawUpstream) -> Iterator[Callable[[bytes], None]]:
    def set_response(response: bytes) -> None:
        raw_upstream.response = response

    yield set_response
    raw_upstream.response = OK_RESPONSE


def logged(raw_sidecar: RunningSidecar, request_id: str) -> dict[str, object]:
    url = raw_sidecar.sidecar.settings.database.url

    def row() -> dict[str, object] | None:
        rows = fetch_rows(url, "client_request_id = :id", id=request_id)
        return rows[0] if rows else None

    return wait_for(row, what=f"the row for {request_id}")


def ask(raw_sidecar: RunningSidecar, request_id: str) -> bytes:
    return request(
        "POST",
        "/v1/chat/completions",
        [
            (b"content-type", b"application/json"),
            (b"x-request-id", request_id.encode()),
            (b"connection", b"close"),
        ],
        b'{"model":"m"}',
    )


MALFORMED = {
    "not HTTP at all": b"HELLO\r\n\r\n",
    "status code out of range": b"HTTP/1.1 99999 OK\r\ncontent-length: 7\r\n\r\n" + BODY,
    "content-length and chunked": OK_HEAD
    + b"content-length: 7\r\ntransfer-encoding: chunked\r\n\r\n7\r\n"
    + BODY
    + b"\r\n0\r\n\r\n",
    "two content-lengths": OK_HEAD + b"content-length: 7\r\ncontent-length: 8\r\n\r\n" + BODY,
    "chunk size not hex": OK_HEAD + b"transfer-encoding: chunked\r\n\r\nzz\r\n" + BODY,
    "NUL in a header value": OK_HEAD + b"x-bad: a\x00b\r\ncontent-length: 7\r\n\r\n" + BODY,
    "space in a header name": OK_HEAD + b"x bad: 1\r\ncontent-length: 7\r\n\r\n" + BODY,
    "a 200 KB header": OK_HEAD
    + b"x-big: "
    + b"a" * 200_000
    + b"\r\ncontent-length: 7\r\n\r\n"
    + BODY,
    "204 with a body": b"HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n" + BODY,
}


@pytest.mark.parametrize("response", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_upstream_response_becomes_a_502_in_openai_shape(
    raw_sidecar: RunningSidecar, answer_with: Callable[[bytes], None], response: bytes
) -> None:
    answer_with(response)
    request_id = f"malformed-{len(response)}-{response[:12]!r}"
    received = exchange(port_of(raw_sidecar.proxy_url), ask(raw_sidecar, request_id))
    assert received.statuses == [502]
    error = orjson.loads(received.responses[0].body)["error"]
    assert (error["type"], error["code"]) == ("BadGateway", 502)
    assert received.responses[0].header(b"x-request-id") is not None
    row = logged(raw_sidecar, request_id)
    assert (row["status"], row["error_kind"]) == (502, "upstream_unreachable")


def test_obs_text_in_an_upstream_header_is_relayed_unchanged(
    raw_sidecar: RunningSidecar, answer_with: Callable[[bytes], None]
) -> None:
    answer_with(OK_HEAD + b"x-note: caf\xe9 \xff\r\ncontent-length: 7\r\n\r\n" + BODY)
    received = exchange(port_of(raw_sidecar.proxy_url), ask(raw_sidecar, "obs-text"))
    assert received.statuses == [200]
    assert received.responses[0].header(b"x-note") == b"caf\xe9 \xff"
    assert received.responses[0].body == BODY


def test_a_control_byte_in_an_upstream_header_drops_that_header_not_the_response(
    raw_sidecar: RunningSidecar, answer_with: Callable[[bytes], None]
) -> None:
    answer_with(OK_HEAD + b"x-bad: a\x01b\r\ncontent-length: 7\r\n\r\n" + BODY)
    received = exchange(port_of(raw_sidecar.proxy_url), ask(raw_sidecar, "ctl-upstream-header"))
    assert received.statuses == [200]
    assert received.responses[0].header(b"x-bad") is None
    assert received.responses[0].body == BODY


def upstream_errors(raw_sidecar: RunningSidecar, kind: str) -> float:
    registry = raw_sidecar.sidecar.metrics.registry
    value = registry.get_sample_value("sidecar_upstream_errors_total", {"kind": kind})
    return value or 0.0


def test_an_upstream_status_above_599_gives_the_client_a_502_and_counts_one_error(
    raw_sidecar: RunningSidecar, answer_with: Callable[[bytes], None]
) -> None:
    answer_with(b"HTTP/1.1 600 Weird\r\ncontent-length: 7\r\n\r\n" + BODY)
    before = upstream_errors(raw_sidecar, "upstream_error")
    received = exchange(port_of(raw_sidecar.proxy_url), ask(raw_sidecar, "status-600"))
    assert received.statuses == [502]
    row = logged(raw_sidecar, "status-600")
    assert (row["status"], row["error_kind"]) == (502, "upstream_error")
    assert upstream_errors(raw_sidecar, "upstream_error") == before + 1


def test_a_malformed_upstream_response_counts_one_upstream_error(
    raw_sidecar: RunningSidecar, answer_with: Callable[[bytes], None]
) -> None:
    answer_with(MALFORMED["not HTTP at all"])
    before = upstream_errors(raw_sidecar, "upstream_unreachable")
    received = exchange(port_of(raw_sidecar.proxy_url), ask(raw_sidecar, "not-http-count"))
    assert received.statuses == [502]
    logged(raw_sidecar, "not-http-count")
    assert upstream_errors(raw_sidecar, "upstream_unreachable") == before + 1


def test_headers_the_upstream_names_in_connection_are_not_relayed(
    raw_sidecar: RunningSidecar, answer_with: Callable[[bytes], None]
) -> None:
    answer_with(
        OK_HEAD + b"connection: x-internal\r\nx-internal: 1\r\ncontent-length: 7\r\n\r\n" + BODY
    )
    received = exchange(port_of(raw_sidecar.proxy_url), ask(raw_sidecar, "connection-named"))
    assert received.statuses == [200]
    assert received.responses[0].header(b"x-internal") is None
