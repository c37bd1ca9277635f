"""Upstream faults and client disconnects: a clear status, no crash, and a logged row."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from sidecar.fake_vllm import FakeVllm
from sidecar.testing.harness import RunningSidecar, running_sidecar
from sidecar.testing.servers import RunningServer
from tests.helpers import sidecar_settings, wait_for, wait_for_rows

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
CHAT = {"model": "tiny", "messages": MESSAGES, "max_tokens": 5}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_upstream_gives_502_in_openai_shape(database_url: str, tmp_path: Path) -> None:
    settings = sidecar_settings(
        f"http://127.0.0.1:{closed_port()}", database_url, tmp_path / "spool"
    )
    with running_sidecar(settings) as sidecar:
        response = httpx.post(f"{sidecar.proxy_url}/v1/chat/completions", json=CHAT)
        assert response.status_code == 502
        error = response.json()["error"]
        assert error["type"] == "BadGateway"
        assert error["code"] == 502
        assert "cannot connect to the upstream" in error["message"]
        with pytest.raises(openai.InternalServerError):
            openai.OpenAI(
                base_url=f"{sidecar.proxy_url}/v1", api_key="k", max_retries=0
            ).models.list()
        rows = wait_for_rows(database_url, 2)
    assert {row["error_kind"] for row in rows} == {"upstream_unreachable"}
    assert {row["status"] for row in rows} == {502}


def test_slow_upstream_gives_504(
    upstream: RunningServer, database_url: str, tmp_path: Path
) -> None:
    settings = sidecar_settings(
        upstream.url, database_url, tmp_path / "spool", upstream={"read_timeout_s": 0.2}
    )
    with running_sidecar(settings) as sidecar:
        response = httpx.post(
            f"{sidecar.proxy_url}/v1/chat/completions",
            json=CHAT,
            headers={"x-fake-latency-ms": "2000"},
        )
        assert response.status_code == 504
        assert response.json()["error"]["type"] == "GatewayTimeout"
        row = wait_for_rows(database_url, 1)[0]
    assert row["error_kind"] == "upstream_timeout"


def test_upstream_reset_mid_stream_reaches_the_client_as_a_broken_stream(
    sidecar: RunningSidecar, database_url: str
) -> None:
    sdk = openai.OpenAI(base_url=f"{sidecar.proxy_url}/v1", api_key="k", max_retries=0)
    received: list[str] = []
    with pytest.raises((httpx.HTTPError, openai.APIError)):  # noqa: PT012
        stream = sdk.chat.completions.create(
            model="tiny", messages=MESSAGES, stream=True, max_tokens=50,
            extra_headers={"x-fake-reset-after-chunks": "3"},
        )  # fmt: skip
        for chunk in stream:
            received.extend(choice.delta.content or "" for choice in chunk.choices)
    row = wait_for_rows(database_url, 1)[0]
    assert row["error_kind"] == "upstream_reset"
    assert row["status"] == 200  # the upstream had answered 200 before it broke


def test_client_disconnect_mid_stream_cancels_upstream_and_logs_cancelled(
    fake: FakeVllm, sidecar: RunningSidecar, database_url: str
) -> None:
    body = {**CHAT, "stream": True, "max_tokens": 200}
    with httpx.stream(
        "POST", f"{sidecar.proxy_url}/v1/chat/completions", json=body,
        headers={"x-fake-chunk-delay-ms": "20"},
    ) as response:  # fmt: skip
        for _ in zip(range(3), response.iter_raw(), strict=False):
            pass
    wait_for(lambda: fake.requests_cancelled >= 1, what="the upstream to see the cancel")
    row = wait_for_rows(database_url, 1)[0]
    assert bool(row["cancelled"])
    assert row["error_kind"] == "client_disconnected"
    assert row["status"] == 200


def test_client_disconnect_while_waiting_for_headers_is_logged_as_499(
    fake: FakeVllm, sidecar: RunningSidecar, database_url: str
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{sidecar.proxy_url}/v1/chat/completions", json=CHAT,
            headers={"x-fake-latency-ms": "3000"}, timeout=0.3,
        )  # fmt: skip
    row = wait_for_rows(database_url, 1)[0]
    assert row["status"] == 499
    assert bool(row["cancelled"])


def test_upstream_5xx_is_relayed_and_counted(sidecar: RunningSidecar, database_url: str) -> None:
    response = httpx.post(
        f"{sidecar.proxy_url}/v1/chat/completions", json=CHAT, headers={"x-fake-status": "500"}
    )
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "InternalServerError"
    row = wait_for_rows(database_url, 1)[0]
    assert row["error_kind"] == "upstream_error"
    metrics = httpx.get(f"{sidecar.admin_url}/metrics").text
    assert 'sidecar_upstream_errors_total{kind="upstream_error"} 1.0' in metrics


def test_malformed_sse_from_the_upstream_is_relayed_as_is_and_the_rest_logged(
    sidecar: RunningSidecar, database_url: str
) -> None:
    body = {**CHAT, "stream": True}
    with httpx.stream("POST", f"{sidecar.proxy_url}/v1/chat/completions", json=body,
                      headers={"x-fake-malformed-sse": "1"}) as response:  # fmt: skip
        assert response.status_code == 200
        direct_events = [line for line in response.iter_lines() if line]
    assert sum(not _parses(line) for line in direct_events[:-1]) == 1  # the cut event, as sent
    assert direct_events[-1] == "data: [DONE]"
    row = wait_for_rows(database_url, 1)[0]
    assert row["status"] == 200
    assert row["finish_reason"] == "length"  # max_tokens 5: the events around the cut one count
    assert row["completion_tokens"] == 5


def _parses(line: str) -> bool:
    try:
        json.loads(line.removeprefix("data: "))
    except json.JSONDecodeError:
        return False
    return True


def test_an_upstream_url_ending_in_v1_is_normalised_and_said_once(
    upstream: RunningServer, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = sidecar_settings(f"{upstream.url}/v1/", database_url, tmp_path / "spool")
    with caplog.at_level(logging.INFO, logger="sidecar"), running_sidecar(settings) as sidecar:
        sdk = openai.OpenAI(base_url=f"{sidecar.proxy_url}/v1", api_key="k", max_retries=0)
        completion = sdk.chat.completions.create(model="tiny", messages=MESSAGES)
        assert completion.choices[0].message.content
        assert sdk.models.list().data
        (row, _models) = wait_for_rows(database_url, 2)
    assert (row["path"], row["status"]) == ("/v1/chat/completions", 200)
    said = [
        record.getMessage() for record in caplog.records if "ends in /v1" in record.getMessage()
    ]
    assert said == [f"upstream.url {upstream.url}/v1/ ends in /v1: forwarding under {upstream.url} "
                    "(clients' paths carry /v1)"]  # fmt: skip


def test_an_upstream_unreachable_at_start_is_logged_once_with_the_reason(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    settings = sidecar_settings(url, database_url, tmp_path / "spool")
    with caplog.at_level(logging.INFO, logger="sidecar"), running_sidecar(settings):
        pass
    said = [record for record in caplog.records if "unreachable at start" in record.getMessage()]
    assert len(said) == 1
    assert said[0].levelno == logging.WARNING
    assert said[0].getMessage().startswith(f"upstream {url} unreachable at start (cannot connect")


def test_the_start_up_log_line_does_not_show_the_upstream_password(
    upstream: RunningServer, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with_password = upstream.url.replace("http://", "http://operator:s3cret-pw@")
    settings = sidecar_settings(with_password, database_url, tmp_path / "spool")
    with caplog.at_level(logging.INFO, logger="sidecar"), running_sidecar(settings):
        pass
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "sidecar listening" in text
    assert "s3cret-pw" not in text
    assert "operator:***@127.0.0.1" in text
