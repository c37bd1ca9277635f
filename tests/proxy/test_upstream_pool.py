"""The upstream connection pool: bounded waits for a slot, slow readers dropped, /readyz honest."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from sidecar.testing.harness import RunningSidecar, running_sidecar
from sidecar.testing.servers import RunningServer, serving
from tests.helpers import sidecar_settings, wait_for, wait_for_rows
from tests.hostile.conftest import port_of
from tests.hostile.wire import connect, wait_closed

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
SLOW_STREAM = {**CHAT, "stream": True, "max_tokens": 500}


def in_use(sidecar: RunningSidecar) -> float:
    text = httpx.get(f"{sidecar.admin_url}/metrics").text
    line = next(row for row in text.splitlines()
                if row.startswith("sidecar_upstream_connections_in_use "))  # fmt: skip
    return float(line.split()[1])


@pytest.fixture
def pool_of_four(
    upstream: RunningServer, database_url: str, tmp_path: Path
) -> Iterator[RunningSidecar]:
    settings = sidecar_settings(
        upstream.url, database_url, tmp_path / "spool",
        upstream={"max_connections": 4, "pool_timeout_s": 0.5},
    )  # fmt: skip
    with running_sidecar(settings) as sidecar:
        yield sidecar


def test_four_slow_readers_on_a_pool_of_four_give_the_fifth_request_a_503_and_readyz_degrades(
    pool_of_four: RunningSidecar, database_url: str
) -> None:
    sidecar = pool_of_four
    readers: list[Iterator[bytes]] = []  # kept: a dropped iterator closes its response
    with contextlib.ExitStack() as streams:
        for _ in range(4):  # each holds its upstream connection while it reads slowly
            response = streams.enter_context(httpx.stream(
                "POST", f"{sidecar.proxy_url}/v1/chat/completions", json=SLOW_STREAM,
                headers={"x-fake-chunk-delay-ms": "100"}, timeout=30,
            ))  # fmt: skip
            readers.append(response.iter_raw())
            next(readers[-1])
        wait_for(lambda: in_use(sidecar) == 4, what="four upstream connections in use")
        ready = httpx.get(f"{sidecar.admin_url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["upstream_pool"].startswith("saturated")
        fifth = httpx.post(
            f"{sidecar.proxy_url}/v1/chat/completions", json=CHAT,
            headers={"x-request-id": "fifth"}, timeout=30,
        )  # fmt: skip
        assert fifth.status_code == 503
        error = fifth.json()["error"]
        assert (error["type"], error["code"]) == ("ServiceUnavailableError", 503)
        assert "upstream.pool_timeout_s" in error["message"]
        sdk = openai.OpenAI(base_url=f"{sidecar.proxy_url}/v1", api_key="k", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            sdk.models.list()
    # the slow readers left: their slots are free again
    wait_for(lambda: in_use(sidecar) == 0, what="the slots to be released")
    assert httpx.post(f"{sidecar.proxy_url}/v1/chat/completions", json=CHAT).status_code == 200
    assert httpx.get(f"{sidecar.admin_url}/readyz").json()["checks"]["upstream_pool"] == "ok"
    (row,) = wait_for_rows(database_url, 1, "client_request_id = 'fifth'")
    assert (row["status"], row["error_kind"]) == (503, "upstream_busy")
    metrics = httpx.get(f"{sidecar.admin_url}/metrics").text
    assert 'sidecar_upstream_errors_total{kind="upstream_busy"} 2.0' in metrics


class Firehose:
    """An upstream that streams 512 MiB (``/big``, more than every buffer on the way holds) or
    1 MiB as fast as the sidecar takes it, and notes a disconnect."""

    CHUNK = b"x" * (1024 * 1024)

    def __init__(self) -> None:
        self.disconnects = 0
        self.requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        if scope["path"] == "/v1/models":
            body = orjson.dumps({"object": "list", "data": []})
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})  # fmt: skip
        await receive()  # the (empty) request body
        watch = asyncio.ensure_future(receive())  # then only http.disconnect can come
        for _ in range(512 if scope["path"].endswith("/big") else 1):
            await asyncio.sleep(0)  # a send to a gone client returns at once: let the watch run
            if watch.done() and watch.result()["type"] == "http.disconnect":
                self.disconnects += 1
                return
            await send({"type": "http.response.body", "body": self.CHUNK, "more_body": True})
        watch.cancel()
        await send({"type": "http.response.body", "body": b""})


def test_a_client_that_stops_reading_is_dropped_after_the_write_timeout_and_frees_the_slot(
    tmp_path: Path,
) -> None:
    firehose = Firehose()
    with serving(firehose) as upstream:
        database_url = f"sqlite:///{tmp_path / 'sidecar.db'}"
        settings = sidecar_settings(
            upstream.url, database_url, tmp_path / "spool",
            upstream={"max_connections": 1, "pool_timeout_s": 30.0},
            proxy={"write_timeout_s": 0.5},
        )  # fmt: skip
        with running_sidecar(settings) as sidecar:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read
            sock.connect(("127.0.0.1", port_of(sidecar.proxy_url)))
            sock.sendall(b"GET /v1/files/big HTTP/1.1\r\nhost: x\r\nx-request-id: stalled\r\n\r\n")
            (row,) = wait_for_rows(database_url, 1, "client_request_id = 'stalled'")
            assert row["error_kind"] == "client_too_slow"
            assert "proxy.write_timeout_s" in row["error_message"]
            assert wait_closed(sock, 30) is not None  # the sidecar dropped the connection
            sock.close()
            # the only upstream slot is free again: a reading client gets the whole body
            with connect(port_of(sidecar.proxy_url), timeout_s=30) as reader:
                reader.sendall(
                    b"GET /v1/files/small HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
                )
                received = 0
                while chunk := reader.recv(1 << 20):
                    received += len(chunk)
            assert received > len(Firehose.CHUNK)
        wait_for(lambda: firehose.disconnects >= 1, what="the upstream to see the drop")
