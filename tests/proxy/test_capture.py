"""What the log learns of an exchange: the pure :class:`Capture` and its metrics, and what it keeps
of a response, bounded by what a row can store whatever the response size.

Only the first ``request_log.max_body_bytes`` and the last 64 KiB of a response reach the spool
record; the row still gets the tokens, finish reason and real size.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from sidecar.logqueue.rows import build_row
from sidecar.metrics import SidecarMetrics
from sidecar.proxy.capture import (
    SUMMARY_HEAD_BYTES,
    TAIL_BYTES,
    Capture,
    ResponseCapture,
    observe,
)
from sidecar.records import Exchange, ModelIdentity
from sidecar.testing.servers import RunningServer, serving
from sidecar.wire.cut_json import cut_json_summary
from tests.helpers import fetch_rows, wait_for
from tests.wire.test_sse import WITH_USAGE, token

MiB = 1024 * 1024
USAGE = {"prompt_tokens": 7, "total_tokens": 4007, "completion_tokens": 4000}


def big_completion(size: int) -> bytes:
    head = {"id": "chatcmpl-big", "object": "chat.completion", "created": 1, "model": "tiny"}
    text = "x" * size
    body = {**head, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "logprobs": None, "finish_reason": "length",
                                 "stop_reason": None}],
            "usage": {**USAGE, "prompt_tokens_details": None}}  # fmt: skip
    return orjson.dumps(body)


def captured(body: bytes, keep_bytes: int, piece: int) -> ResponseCapture:
    capture = ResponseCapture(keep_bytes)
    for start in range(0, len(body), piece):
        capture.add(body[start : start + piece], 0.0)
    return capture


def row_for(capture: ResponseCapture, *, stream: bool, max_body_bytes: int = MiB) -> Any:
    exchange = Exchange(
        id="0" * 32, client_request_id=None, started_at=0.0, method="POST",
        path="/v1/chat/completions", query="", status=200, latency_ms=1.0, ttfb_ms=1.0,
        upstream_ms=1.0, request_content_type="application/json",
        request_body=b'{"model":"tiny"}',
        response_content_type="text/event-stream" if stream else "application/json",
        response_body=capture.body(), stream=stream, chunk_marks=tuple(capture.marks),
        response_bytes=capture.total_bytes, response_gap_at=capture.gap_at,
    )  # fmt: skip
    return build_row(
        exchange, lambda _: ModelIdentity(None, None), body_policy="full",
        max_body_bytes=max_body_bytes,
    )  # fmt: skip


@settings(deadline=None, max_examples=200)
@given(
    st.integers(min_value=1, max_value=4 * TAIL_BYTES),
    st.integers(min_value=0, max_value=4 * TAIL_BYTES),
    st.integers(min_value=0, max_value=8 * TAIL_BYTES),
)
def test_a_capture_never_holds_more_than_the_stored_size_plus_the_tail(
    piece: int, keep_bytes: int, size: int
) -> None:
    body = bytes(range(256)) * (size // 256 + 1)
    capture = captured(body[:size], keep_bytes, piece)
    assert capture.total_bytes == size
    kept = capture.body()
    assert len(kept) <= keep_bytes + TAIL_BYTES
    # Compared as booleans: pytest's diff of two 200 KB byte strings takes hours to shrink.
    if capture.gap_at is None:
        whole = kept == body[:size]
        assert whole, (len(kept), size)
    else:
        head = min(keep_bytes, SUMMARY_HEAD_BYTES)  # too long to store: only its start is kept
        assert capture.gap_at == head
        same_head = kept[:head] == body[:head]
        assert same_head
        same_tail = kept[head:] == body[size - TAIL_BYTES : size]  # the whole last TAIL_BYTES
        assert same_tail, (len(kept) - head, TAIL_BYTES)


def test_a_16_mb_json_response_keeps_its_tokens_finish_reason_and_real_size_in_the_row() -> None:
    body = big_completion(16 * MiB)
    capture = captured(body, MiB, 65536)
    assert len(capture.body()) <= MiB + TAIL_BYTES
    row = row_for(capture, stream=False)
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (7, 4000, 4007)
    assert row.finish_reason == "length"
    assert row.completion_id == "chatcmpl-big"
    assert row.response_body == (
        f"<body of {len(body)} bytes not stored: over request_log.max_body_bytes>"
    )
    assert row.schema_verdict is None  # a cut output is not checked against a schema


@pytest.mark.parametrize("over", [1, 20, 200])
def test_a_json_response_just_over_the_stored_size_keeps_its_usage(over: int) -> None:
    """The usage object ends the body: ``over`` bytes past ``max_body_bytes`` it straddles the
    point where the capture stops storing, and must still be read whole."""
    filler = MiB - len(big_completion(0)) + over
    body = big_completion(filler)
    assert len(body) == MiB + over
    capture = captured(body, MiB, 65536)
    row = row_for(capture, stream=False)
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (7, 4000, 4007)
    assert row.finish_reason == "length"


def test_a_long_stream_keeps_its_usage_finish_reason_and_time_to_first_token() -> None:
    events = [WITH_USAGE[0], *[token("abcdefgh" * 8)] * 40_000, *WITH_USAGE[3:]]
    raw = b"".join(events)
    capture = ResponseCapture(MiB)
    for number, event in enumerate(events):
        capture.add(event, float(number))
    assert capture.gap_at is not None
    row = row_for(capture, stream=True)
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (10, 3, 13)
    assert row.finish_reason == "length"
    assert row.ttft_ms == 1.0  # the second event carried the first token
    assert row.response_body == (
        f"<body of {len(raw)} bytes not stored: over request_log.max_body_bytes>"
    )


def test_the_summary_of_a_cut_body_reads_usage_through_nested_objects_and_strings() -> None:
    tail = (
        b'"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"x":{"y":"}{\\""},"total_tokens":2}}'
    )
    head = b'{"id":"a\\"b","object":"chat.completion","created":5,"model":"m"'
    summary = cut_json_summary(head + tail, len(head))
    assert summary == {
        "id": 'a"b', "object": "chat.completion", "created": 5, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "x": {"y": '}{"'}, "total_tokens": 2},
    }  # fmt: skip


# --- the Capture of one exchange, without sockets ---------------------------------------------

T0 = 1000.0  # perf_counter seconds when the request arrived (times below are exact in binary)
HEADERS = {b"content-type": b"application/json", b"x-request-id": b"client-7",
           b"x-sidecar-schema": b"review"}  # fmt: skip


def new_capture(headers: dict[bytes, bytes] = HEADERS, keep_bytes: int = MiB) -> Capture:
    return Capture(
        "f" * 32, T0, 1_700_000_000.0, "POST", "/v1/chat/completions", b"a=%C3%A9&b=\xe9",
        headers, keep_bytes=keep_bytes, client_key_hash="abc123",
    )  # fmt: skip


def test_a_capture_records_a_stream_with_its_chunk_times_and_time_to_first_byte() -> None:
    capture = new_capture()
    capture.request_body, capture.model, capture.usage_injected = b'{"model":"tiny"}', "tiny", True
    capture.upstream_ms = 1.5
    capture.on_response(200, "text/event-stream; charset=utf-8", None)
    capture.on_chunk(b"data: 1\n\n", T0 + 0.125)
    capture.on_chunk(b"data: 22\n\n", T0 + 0.25)
    exchange = capture.to_exchange(T0 + 0.5)
    assert exchange.stream
    assert exchange.usage_injected
    assert (exchange.status, exchange.error_kind, exchange.cancelled) == (200, None, False)
    assert exchange.response_body == b"data: 1\n\ndata: 22\n\n"
    assert exchange.chunk_marks == ((9, 125.0), (19, 250.0))
    assert exchange.ttfb_ms == 125.0
    assert exchange.latency_ms == 500.0
    assert (exchange.upstream_ms, exchange.response_bytes, exchange.response_gap_at) == (
        1.5,
        19,
        None,
    )
    assert exchange.request_body == b'{"model":"tiny"}'


def test_a_capture_takes_the_request_facts_from_its_headers() -> None:
    exchange = new_capture().to_exchange(T0)
    assert exchange.client_request_id == "client-7"
    assert exchange.request_content_type == "application/json"
    assert exchange.schema_header == "review"
    assert exchange.client_key_hash == "abc123"
    assert exchange.query == "a=%C3%A9&b=\xe9"  # latin-1, byte for byte
    assert (exchange.started_at, exchange.method, exchange.path) == (
        1_700_000_000.0, "POST", "/v1/chat/completions",
    )  # fmt: skip
    bare = new_capture(headers={}).to_exchange(T0)
    assert (bare.client_request_id, bare.request_content_type, bare.schema_header) == (None,) * 3


def test_a_json_response_has_no_chunk_marks_and_a_known_long_one_keeps_only_a_summary() -> None:
    capture = new_capture()
    capture.on_response(200, "application/json", 10 * MiB)  # too long to store: a summary
    capture.on_chunk(b"x" * (SUMMARY_HEAD_BYTES + TAIL_BYTES + 10), T0 + 0.003)
    exchange = capture.to_exchange(T0 + 0.004)
    assert not exchange.stream
    assert exchange.chunk_marks == ()
    assert exchange.ttfb_ms == pytest.approx(3.0)
    assert exchange.response_bytes == SUMMARY_HEAD_BYTES + TAIL_BYTES + 10
    assert len(exchange.response_body) == SUMMARY_HEAD_BYTES + TAIL_BYTES
    assert exchange.response_gap_at == SUMMARY_HEAD_BYTES
    assert exchange.capture_truncated


@pytest.mark.parametrize(
    ("status", "kind"),
    [(200, None), (404, None), (400, "bad_request"), (413, "bad_request"),
     (422, "bad_request"), (500, "upstream_error"), (503, "upstream_error")],
)  # fmt: skip
def test_an_upstream_status_sets_the_error_kind_of_its_row(status: int, kind: str | None) -> None:
    capture = new_capture()
    capture.on_response(status, "application/json", 2)
    capture.on_chunk(b"{}", T0)
    assert capture.to_exchange(T0).error_kind == kind


def test_the_sidecars_own_answer_replaces_whatever_was_captured() -> None:
    capture = new_capture()
    capture.on_response(200, "text/event-stream", None)
    capture.on_chunk(b"data: 1\n\n", T0 + 0.001)
    capture.on_sidecar_answer(502, "upstream_reset", "broken", b'{"error":{}}')
    exchange = capture.to_exchange(T0 + 0.002)
    assert (exchange.status, exchange.error_kind, exchange.error_message) == (
        502, "upstream_reset", "broken",
    )  # fmt: skip
    assert (exchange.response_content_type, exchange.response_body) == (
        "application/json", b'{"error":{}}',
    )  # fmt: skip
    assert (exchange.chunk_marks, exchange.response_bytes) == ((), 12)


def test_an_error_after_the_response_started_keeps_its_status_and_bytes() -> None:
    capture = new_capture()
    capture.on_response(200, "text/event-stream", None)
    capture.on_chunk(b"data: 1\n\n", T0 + 0.001)
    capture.on_error("upstream_reset", "the upstream broke the stream")
    exchange = capture.to_exchange(T0 + 0.002)
    assert (exchange.status, exchange.error_kind) == (200, "upstream_reset")
    assert exchange.response_body == b"data: 1\n\n"


def test_a_client_gone_before_any_answer_is_a_499_and_after_one_keeps_its_status() -> None:
    early = new_capture()
    early.on_client_gone()
    exchange = early.to_exchange(T0)
    assert (exchange.status, exchange.error_kind, exchange.cancelled) == (
        499, "client_disconnected", True,
    )  # fmt: skip
    late = new_capture()
    late.on_response(200, "text/event-stream", None)
    late.on_client_gone()
    assert (late.to_exchange(T0).status, late.to_exchange(T0).cancelled) == (200, True)


def sample(metrics: SidecarMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("kind", "upstream_errors"),
    [(None, 0), ("bad_request", 0), ("upstream_error", 1), ("upstream_reset", 1),
     ("upstream_busy", 1), ("client_too_slow", 0)],
)  # fmt: skip
def test_observe_counts_one_request_and_at_most_one_upstream_error(
    kind: str | None, upstream_errors: int
) -> None:
    metrics = SidecarMetrics(CollectorRegistry())
    capture = new_capture()
    capture.model = "tiny"
    capture.on_response(200, "application/json", 2)
    if kind is not None:
        capture.on_error(kind, "why")
    observe(capture.to_exchange(T0 + 0.25), capture.model, metrics)
    assert sample(metrics, "sidecar_requests_total", model="tiny", status="200") == 1
    assert sample(metrics, "sidecar_request_duration_seconds_sum", model="tiny") == pytest.approx(
        0.25
    )
    errors = sum(
        sample(metrics, "sidecar_upstream_errors_total", kind=label)
        for label in ("upstream_error", "upstream_reset", "upstream_busy")
    )
    assert errors == upstream_errors
    assert sample(metrics, "sidecar_client_disconnects_total") == 0


def test_observe_counts_a_client_disconnect_once() -> None:
    metrics = SidecarMetrics(CollectorRegistry())
    capture = new_capture()
    capture.on_client_gone()
    observe(capture.to_exchange(T0), None, metrics)
    assert sample(metrics, "sidecar_client_disconnects_total") == 1
    assert sample(metrics, "sidecar_requests_total", model="none", status="499") == 1


# --- 128 concurrent 16 MiB responses through a sidecar process -----------------------------

CONCURRENT = 128
RESPONSE_BYTES = 16 * MiB


@pytest.fixture(scope="module")
def big_upstream() -> Iterator[RunningServer]:
    body = big_completion(RESPONSE_BYTES)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        payload = body if scope["path"] == "/v1/chat/completions" else b'{"data":[]}'
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(payload)).encode())]  # fmt: skip
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for start in range(0, len(payload), MiB):
            more = start + MiB < len(payload)
            await send({"type": "http.response.body", "body": payload[start : start + MiB],
                        "more_body": more})  # fmt: skip

    with serving(app) as server:
        yield server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


async def fetch_all(url: str, count: int, prefix: str = "big") -> list[int]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:

        async def one(index: int) -> int:
            body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
            async with client.stream("POST", f"{url}/v1/chat/completions", json=body,
                                     headers={"x-request-id": f"{prefix}-{index}"}) as response:  # fmt: skip
                size = 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                assert response.status_code == 200
                return size

        return await asyncio.gather(*(one(index) for index in range(count)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak RSS from /proc")
def test_128_concurrent_16_mb_responses_lose_no_row_and_stay_within_bounded_memory_and_spool(
    big_upstream: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy_port, admin_port = closed_port(), closed_port()
    database_url = f"sqlite:///{tmp_path / 'sidecar.db'}"
    config = tmp_path / "sidecar.yaml"
    config.write_text(yaml.safe_dump({
        "upstream": {"url": big_upstream.url},
        "proxy": {"host": "127.0.0.1", "port": proxy_port},
        "admin": {"port": admin_port},
        "database": {"url": database_url},
        # 128 full captures would need 2 GiB of spool; bounded ones fit many times over
        "spool": {"dir": str(tmp_path / "spool"), "max_bytes": 256 * MiB,
                  "segment_bytes": 16 * MiB},
        "writer": {"workers": 0, "idle_poll_s": 0.05},
    }))  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "sidecar.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "sidecar.log").open("wb"),
        env={**os.environ, "SIDECAR_UPSTREAM_URL": "", "SIDECAR_DATABASE_URL": ""},
    )  # fmt: skip
    try:
        wait_for(lambda: _healthy(admin_port, process), timeout_s=60, what="the sidecar")
        proxy_url = f"http://127.0.0.1:{proxy_port}"
        assert (
            asyncio.run(fetch_all(proxy_url, 2, "warm-up"))
            == [len(big_completion(RESPONSE_BYTES))] * 2
        )
        before_kib = memory_kib(process.pid, "VmRSS")
        sizes = asyncio.run(fetch_all(proxy_url, CONCURRENT))
        peak_kib = memory_kib(process.pid, "VmHWM")
        assert set(sizes) == {len(big_completion(RESPONSE_BYTES))}
        rows = wait_for(
            lambda: found
            if len(found := fetch_rows(database_url, "client_request_id LIKE 'big-%'")) >= CONCURRENT
            else None,
            timeout_s=120, what="every row",
        )  # fmt: skip
        metrics = httpx.get(f"http://127.0.0.1:{admin_port}/metrics").text
    finally:
        process.terminate()
        process.wait(60)
    assert len(rows) == CONCURRENT
    assert {row["completion_tokens"] for row in rows} == {4000}
    assert {row["finish_reason"] for row in rows} == {"length"}
    lost = [line for line in metrics.splitlines()
            if line.startswith("sidecar_log_rows_lost_total") and not line.endswith(" 0.0")]  # fmt: skip
    assert lost == []
    growth_mib = (peak_kib - before_kib) / 1024
    with capsys.disabled():
        print(f"\n128 x 16 MiB: sidecar RSS {before_kib / 1024:.0f} MiB before, peak "
              f"{peak_kib / 1024:.0f} MiB (+{growth_mib:.0f} MiB)")  # fmt: skip
    # each request holds at most ~1.1 MiB of capture plus socket buffers; 16 MiB each would be 2 GiB
    assert growth_mib < 768


def _healthy(admin_port: int, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None
    try:
        return httpx.get(f"http://127.0.0.1:{admin_port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
