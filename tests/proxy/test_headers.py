"""Header forwarding rules."""

from __future__ import annotations

from sidecar.proxy.headers import client_response_headers, upstream_request_headers


def test_hop_by_hop_and_framing_headers_are_not_forwarded_upstream() -> None:
    headers = upstream_request_headers(
        [(b"host", b"sidecar:8080"), (b"connection", b"keep-alive, x-drop"),
         (b"x-drop", b"1"), (b"content-length", b"10"), (b"transfer-encoding", b"chunked"),
         (b"authorization", b"Bearer client"), (b"x-request-id", b"abc")],
        api_key=None,
    )  # fmt: skip
    assert headers == {"authorization": "Bearer client", "x-request-id": "abc"}


def test_configured_upstream_key_replaces_the_client_authorization() -> None:
    headers = upstream_request_headers([(b"authorization", b"Bearer client")], api_key="server")
    assert headers == {"authorization": "Bearer server"}


def test_repeated_request_headers_are_joined() -> None:
    headers = upstream_request_headers([(b"accept", b"a"), (b"accept", b"b")], api_key=None)
    assert headers == {"accept": "a, b"}


def test_response_keeps_upstream_headers_and_carries_our_request_id() -> None:
    relayed = client_response_headers(
        [(b"Content-Type", b"application/json"), (b"content-length", b"5"),
         (b"Transfer-Encoding", b"chunked"), (b"x-request-id", b"upstream"), (b"vary", b"Origin")],
        request_id=b"ours", keep_length=True,
    )  # fmt: skip
    assert relayed == [
        (b"content-type", b"application/json"), (b"content-length", b"5"),
        (b"vary", b"Origin"), (b"x-request-id", b"ours"),
    ]  # fmt: skip


def test_response_drops_content_length_when_the_body_changes() -> None:
    relayed = client_response_headers(
        [(b"content-length", b"5")], request_id=b"id", keep_length=False
    )
    assert relayed == [(b"x-request-id", b"id")]
