"""Valid SSE framings other than vLLM's LF: CRLF and CR line endings, events without a blank line.

An upstream serving them must be relayed chunk by chunk like an LF stream (the client's first
event arrives while the upstream is still generating), with the injected usage chunk still
hidden, and the row must still get its content, tokens and finish reason.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sidecar.testing.harness import RunningSidecar, running_sidecar
from sidecar.testing.servers import RunningServer, serving
from tests.helpers import sidecar_settings, wait_for_rows
from tests.wire.test_sse import DONE, WITH_USAGE, WITHOUT_USAGE

ENDINGS = {"crlf": b"\r\n", "cr": b"\r"}


class GatedStream:
    """Sends the first two events, waits for ``release``, then the rest (``ending`` framed)."""

    def __init__(self) -> None:
        self.ending = b"\r\n"
        self.release = threading.Event()

    def events(self) -> list[bytes]:
        return [event.replace(b"\n", self.ending) for event in WITH_USAGE]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/v1/models":
            body = orjson.dumps({"object": "list", "data": [{"id": "tiny", "object": "model"}]})
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]})  # fmt: skip
        events = self.events()
        for event in events[:2]:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        for event in events[2:]:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="module")
def gated() -> Iterator[tuple[GatedStream, RunningServer]]:
    app = GatedStream()
    with serving(app) as server:
        yield app, server


@pytest.fixture(scope="module")
def framing_sidecar(
    gated: tuple[GatedStream, RunningServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningSidecar]:
    directory = tmp_path_factory.mktemp("framings")
    settings = sidecar_settings(
        gated[1].url, f"sqlite:///{directory / 'sidecar.db'}", directory / "spool"
    )
    with running_sidecar(settings) as sidecar:
        yield sidecar


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
def test_a_crlf_or_cr_stream_is_relayed_chunk_by_chunk_and_its_row_is_complete(
    gated: tuple[GatedStream, RunningServer], framing_sidecar: RunningSidecar, ending: bytes
) -> None:
    app, _server = gated
    app.ending, request_id = ending, f"framing-{ending.hex()}"
    app.release.clear()
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    received = b""
    with httpx.stream("POST", f"{framing_sidecar.proxy_url}/v1/chat/completions", json=body,
                      headers={"x-request-id": request_id}, timeout=30) as response:  # fmt: skip
        chunks = response.iter_raw()
        first_two = b"".join(WITH_USAGE[:2]).replace(b"\n", ending)
        while len(received) < len(first_two):  # the upstream is still holding the rest back
            received += next(chunks)
        assert received == first_two
        app.release.set()
        received += b"".join(chunks)
    assert received == b"".join(WITHOUT_USAGE).replace(b"\n", ending)  # usage chunk hidden
    database_url = framing_sidecar.sidecar.settings.database.url
    (row,) = wait_for_rows(database_url, 1, "client_request_id = :id", id=request_id)
    assert row["response_body"]["choices"][0]["message"]["content"] == "styleFILEFILE"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (10, 3)
    assert row["finish_reason"] == "length"
    assert DONE.replace(b"\n", ending) in received


def test_a_stream_without_blank_lines_between_events_is_logged_from_its_data_lines(
    tmp_path: Path,
) -> None:
    events = b"".join(event.replace(b"\n\n", b"\n") for event in WITH_USAGE)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip
        await send({"type": "http.response.body", "body": events})

    with serving(app) as upstream:
        database_url = f"sqlite:///{tmp_path / 'sidecar.db'}"
        settings = sidecar_settings(
            upstream.url, database_url, tmp_path / "spool", proxy={"inject_stream_usage": False}
        )
        with running_sidecar(settings) as sidecar:
            response = httpx.post(f"{sidecar.proxy_url}/v1/chat/completions",
                                  json={"model": "tiny", "stream": True})  # fmt: skip
            assert response.content == events
            (row,) = wait_for_rows(database_url, 1)
    assert row["completion_tokens"] == 3
    assert row["finish_reason"] == "length"
