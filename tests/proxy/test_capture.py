"""What the log keeps of a response: bounded by what a row can store, whatever the response size.

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

from sidecar.logqueue.rows import build_row
from sidecar.proxy.capture import SUMMARY_HEAD_BYTES, TAIL_BYTES, ResponseCapture
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
            lambda: (found := fetch_rows(database_url, "client_request_id LIKE 'big-%'"))
            and len(found) >= CONCURRENT and found,
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
