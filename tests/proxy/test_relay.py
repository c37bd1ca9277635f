"""The relay on its own: a ProxyApp driven over ASGI by the test, the fake vLLM on port 0 behind a
real upstream client, and a sink that writes into the same timeline as the client's messages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from sidecar.asgi_types import ASGIMessage, ASGIReceive
from sidecar.metrics import SidecarMetrics
from sidecar.proxy.app import ProxyApp, StreamAborted
from sidecar.proxy.upstream import UpstreamClient
from sidecar.records import Exchange
from sidecar.settings import load_settings
from sidecar.testing.servers import RunningServer

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}
STREAM = {**CHAT, "stream": True}


class Timeline:
    """The sink and the client's ``send``, recording one ordered list of what happened."""

    def __init__(self, metrics: SidecarMetrics) -> None:
        self.events: list[tuple[str, Any]] = []
        self.metrics = metrics
        self.aborted: StreamAborted | None = None  # how the app call ended, if it raised

    def submit(self, exchange: Exchange) -> None:
        self.events.append(("logged", exchange))

    async def send(self, message: ASGIMessage) -> None:
        self.events.append((message["type"], message))

    @property
    def exchanges(self) -> list[Exchange]:
        return [value for kind, value in self.events if kind == "logged"]

    @property
    def bodies(self) -> list[ASGIMessage]:
        return [value for kind, value in self.events if kind == "http.response.body"]

    def status(self) -> int:
        (start,) = (value for kind, value in self.events if kind == "http.response.start")
        return int(start["status"])


Proxy = Callable[..., Awaitable[Timeline]]


def receive_of(*messages: ASGIMessage) -> ASGIReceive:
    """Hand out ``messages``, then wait forever (a client that stays connected)."""
    queue = list(messages)

    async def receive() -> ASGIMessage:
        if queue:
            return queue.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


def body_message(body: bytes) -> ASGIMessage:
    return {"type": "http.request", "body": body, "more_body": False}


def post_scope(body: bytes, *headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {
        "type": "http", "method": "POST", "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions", "query_string": b"",
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()), *headers],
    }  # fmt: skip


@pytest.fixture
async def proxy(upstream: RunningServer) -> AsyncIterator[Proxy]:
    """``await proxy(scope, receive, **proxy_settings)`` runs one request; returns its timeline."""
    clients: list[UpstreamClient] = []

    async def run(scope: dict[str, Any], receive: ASGIReceive, **proxy: Any) -> Timeline:
        settings = load_settings(env={}, overrides={"upstream": {"url": upstream.url},
                                                    "proxy": proxy})  # fmt: skip
        client = UpstreamClient(settings.upstream)
        clients.append(client)
        await client.start()
        metrics = SidecarMetrics(CollectorRegistry())
        timeline = Timeline(metrics)
        try:
            await ProxyApp(settings, client, timeline, metrics)(scope, receive, timeline.send)
        except StreamAborted as exc:  # the ASGI server drops the client connection
            timeline.aborted = exc
        return timeline

    yield run
    for client in clients:
        await client.close()


def sample(timeline: Timeline, name: str, **labels: str) -> float:
    return timeline.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_stream_is_logged_before_its_done_event_reaches_the_client(proxy: Proxy) -> None:
    body = orjson.dumps(STREAM)
    timeline = await proxy(post_scope(body), receive_of(body_message(body)))
    kinds = [kind for kind, _ in timeline.events]
    assert kinds[0] == "http.response.start"
    last = timeline.bodies[-1]
    assert last["more_body"] is False
    assert last["body"].endswith(b"data: [DONE]\n\n")
    assert kinds.index("logged") == len(kinds) - 2  # logged, then the [DONE] event
    sent = b"".join(message["body"] for message in timeline.bodies)
    (exchange,) = timeline.exchanges
    assert exchange.stream
    assert exchange.usage_injected
    assert b'"choices":[]' in exchange.response_body  # the usage chunk the sidecar asked for
    assert b'"choices":[]' not in sent  # hidden from the client
    assert exchange.chunk_marks
    assert exchange.ttfb_ms is not None
    assert exchange.ttfb_ms <= exchange.latency_ms


async def test_a_small_response_is_sent_in_one_piece_and_a_larger_one_chunk_by_chunk(
    proxy: Proxy,
) -> None:
    body = orjson.dumps(CHAT)
    whole = await proxy(post_scope(body), receive_of(body_message(body)))
    assert [message["more_body"] for message in whole.bodies] == [False]
    pieces = await proxy(
        post_scope(body), receive_of(body_message(body)), max_buffered_response_bytes=1
    )
    flags = [message["more_body"] for message in pieces.bodies]
    assert flags[-1] is False
    assert len(flags) >= 2
    assert all(flags[:-1])
    (first,), (second,) = whole.exchanges, pieces.exchanges
    assert len(first.response_body) == len(second.response_body) > 0
    assert whole.status() == pieces.status() == 200


async def test_a_body_that_does_not_arrive_within_proxy_body_timeout_s_gets_408(
    proxy: Proxy,
) -> None:
    timeline = await proxy(post_scope(b"{}"), receive_of(), body_timeout_s=0.05)
    assert timeline.status() == 408
    (exchange,) = timeline.exchanges
    assert (exchange.status, exchange.error_kind) == (408, "bad_request")
    assert sample(timeline, "sidecar_requests_total", model="none", status="408") == 1


async def test_a_client_gone_before_its_body_is_logged_as_499_and_counted_once(
    proxy: Proxy,
) -> None:
    timeline = await proxy(post_scope(b"{}"), receive_of({"type": "http.disconnect"}))
    (exchange,) = timeline.exchanges
    assert (exchange.status, exchange.error_kind, exchange.cancelled) == (
        499, "client_disconnected", True,
    )  # fmt: skip
    assert sample(timeline, "sidecar_client_disconnects_total") == 1
    assert [kind for kind, _ in timeline.events] == ["logged"]  # nothing sent to a gone client


async def test_an_upstream_5xx_is_relayed_and_counted_as_one_upstream_error(proxy: Proxy) -> None:
    body = orjson.dumps(CHAT)
    scope = post_scope(body, (b"x-fake-status", b"500"))
    timeline = await proxy(scope, receive_of(body_message(body)))
    assert timeline.status() == 500
    (exchange,) = timeline.exchanges
    assert (exchange.status, exchange.error_kind) == (500, "upstream_error")
    assert sample(timeline, "sidecar_upstream_errors_total", kind="upstream_error") == 1
    assert sample(timeline, "sidecar_requests_total", model="tiny", status="500") == 1


async def test_a_stream_the_upstream_breaks_aborts_the_client_and_counts_one_reset(
    proxy: Proxy,
) -> None:
    body = orjson.dumps({**STREAM, "max_tokens": 50})
    scope = post_scope(body, (b"x-fake-reset-after-chunks", b"2"))
    timeline = await proxy(scope, receive_of(body_message(body)))
    assert timeline.aborted is not None
    assert timeline.status() == 200  # the headers were sent before the upstream broke
    (exchange,) = timeline.exchanges
    assert (exchange.status, exchange.error_kind) == (200, "upstream_reset")
    assert timeline.bodies  # the chunks before the reset reached the client
    assert timeline.bodies[-1]["more_body"] is True  # and nothing pretended to end the stream
    assert sample(timeline, "sidecar_upstream_errors_total", kind="upstream_reset") == 1
    assert sample(timeline, "sidecar_requests_total", model="tiny", status="200") == 1
