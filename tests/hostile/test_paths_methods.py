"""Weird paths and methods: forwarded byte for byte, or kept by the sidecar, never a 5xx.

Paths outside ``/sidecar/`` must reach the upstream exactly as the client wrote them (the proxy
does not normalise ``..``, ``//`` or percent-escapes, so it cannot be tricked into a different
route than the upstream would pick). Paths whose *decoded* form is under ``/sidecar/`` stay with
the sidecar. Methods get whatever the upstream would answer directly.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.testing.harness import RunningSidecar
from sidecar.testing.servers import RunningServer
from tests.hostile.conftest import count_case, examples, port_of
from tests.hostile.wire import RawUpstream, exchange, request

PROPERTY = examples(150)
_marks = itertools.count()
PARSER_REFUSAL = b"Invalid HTTP request received."  # uvicorn's 400, before any app runs


def request_line_of(forwarded: bytes) -> bytes:
    return forwarded.split(b"\r\n", 1)[0]


FORWARDED_VERBATIM = [
    "//v1/../v1/models",
    "/v1/./models",
    "/v1/%2e%2e/models",
    "/v1/%2E%2E%2Fsidecar%2Fv1%2Ffeedback",
    "/v1/models%00",
    "/v1/%ff%fe",
    "/v1/%zz",
    "/v1/models;jsessionid=1",
    "/v1/models?x=../../etc/passwd&y=%00&z",
    "//sidecar/v1/feedback",
    "/v1/../sidecar/v1/feedback",
    "/" + "a/" * 2000,
]


@pytest.mark.parametrize("target", FORWARDED_VERBATIM)
def test_paths_outside_the_reserved_prefix_are_forwarded_byte_for_byte(
    raw_sidecar: RunningSidecar, raw_upstream: RawUpstream, target: str
) -> None:
    marker = b"path-%d" % next(_marks)
    received = exchange(
        port_of(raw_sidecar.proxy_url), request(target=target, headers=[(b"x-marker", marker)])
    )
    assert received.statuses == [200]
    (forwarded,) = raw_upstream.forwarded(marker, wait_s=2)
    assert request_line_of(forwarded) == f"GET {target} HTTP/1.1".encode()


KEPT_BY_THE_SIDECAR = [
    "/sidecar/../v1/models",
    "/sidecar/v1/../../v1/models",
    "/%73idecar/v1/feedback",
    "/sidecar%2Fv1%2Ffeedback",
    "/sidecar/",
    "/sidecar/%00",
    "/sidecar/v1/feedback/../../../v1/models",
]


@pytest.mark.parametrize("target", KEPT_BY_THE_SIDECAR)
def test_paths_that_decode_into_the_reserved_prefix_stay_with_the_sidecar(
    raw_sidecar: RunningSidecar, raw_upstream: RawUpstream, target: str
) -> None:
    marker = b"kept-%d" % next(_marks)
    received = exchange(
        port_of(raw_sidecar.proxy_url), request(target=target, headers=[(b"x-marker", marker)])
    )
    assert len(received.statuses) == 1
    assert 400 <= received.statuses[0] < 500
    assert raw_upstream.forwarded(marker, wait_s=0.1) == []


_PCHARS = "abcXYZ019-._~!$&'()*+,;=:@"
segments = st.one_of(
    st.text(_PCHARS, max_size=12),
    st.sampled_from(["..", ".", "", "sidecar", "v1", "models", "%2e%2e", "%2f", "%00", "%ff"]),
    st.binary(min_size=1, max_size=4).map(lambda raw: "".join(f"%{byte:02X}" for byte in raw)),
)
targets = st.builds(
    lambda parts, query: "/" + "/".join(parts) + (f"?{query}" if query is not None else ""),
    st.lists(segments, max_size=8),
    st.none() | st.text(_PCHARS + "/?%", max_size=20),
)


def test_any_path_is_forwarded_verbatim_or_kept_by_the_sidecar_never_a_5xx(
    raw_sidecar: RunningSidecar, raw_upstream: RawUpstream
) -> None:
    port = port_of(raw_sidecar.proxy_url)

    @PROPERTY
    @given(target=targets)
    def check(target: str) -> None:
        count_case("paths: forwarded verbatim or kept (raw upstream)")
        marker = b"fuzz-path-%d" % next(_marks)
        received = exchange(port, request(target=target, headers=[(b"x-marker", marker)]))
        assert len(received.statuses) == 1, received
        status = received.statuses[0]
        assert status < 500, (target, received)
        forwarded = raw_upstream.forwarded(marker, wait_s=0.5 if status == 200 else 0.0)
        if status == 200:  # only the raw upstream answers 200 here
            path, _sep, query = target.partition("?")
            sent = target if query else path  # an empty query is dropped, the rest is kept
            assert [request_line_of(raw) for raw in forwarded] == [f"GET {sent} HTTP/1.1".encode()]
        else:
            assert forwarded == []

    check()


methods = st.one_of(
    st.sampled_from(
        [
            "GET",
            "HEAD",
            "POST",
            "PUT",
            "PATCH",
            "DELETE",
            "OPTIONS",
            "TRACE",
            "CONNECT",
            "PROPFIND",
            "MKCOL",
            "LINK",
            "PURGE",
            "QUERY",
            "SEARCH",
            "get",
            "G3T",
            "BREW",
        ]
    ),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ-_!#$%&'*+.^`|~", min_size=1, max_size=10),
)
paths = st.sampled_from(
    ["/v1/models", "/v1/chat/completions", "/v1/completions", "/health", "/metrics", "/nope"]
)


def test_any_method_gets_the_status_the_upstream_gives_directly(
    hostile_sidecar: RunningSidecar, fake_upstream: RunningServer
) -> None:
    proxy, direct = port_of(hostile_sidecar.proxy_url), fake_upstream.port

    @PROPERTY
    @given(method=methods, path=paths)
    def check(method: str, path: str) -> None:
        count_case("methods: same status as a direct call (fake vLLM)")
        raw = request(method, path, [(b"connection", b"close")])
        via_sidecar = exchange(proxy, raw, head=method == "HEAD")
        straight = exchange(direct, raw, head=method == "HEAD")
        (response,) = via_sidecar.responses
        if method == "CONNECT":  # aiohttp sends CONNECT in authority form: the upstream says 400
            assert 400 <= response.status < 500
            assert 400 <= straight.statuses[0] < 500
        else:
            assert via_sidecar.statuses == straight.statuses, (method, path)
        if response.body != PARSER_REFUSAL:  # anything the proxy app saw carries its id
            assert response.header(b"x-request-id") is not None

    check()
