"""Fixtures shared by end-to-end tests: a fake vLLM and a sidecar in front of it (a pytest plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.fake_vllm import FakeVllm, FakeVllmConfig, create_fake_vllm
from sidecar.testing.harness import RunningSidecar, start_sidecar
from sidecar.testing.servers import RunningServer, start_server
from sidecar.testing.webhook_sink import WebhookSink
from tests.helpers import sidecar_settings


@pytest.fixture
def fake() -> FakeVllm:
    return create_fake_vllm(FakeVllmConfig())


@pytest.fixture
def upstream(fake: FakeVllm) -> Iterator[RunningServer]:
    server = start_server(fake)
    yield server
    server.stop()


@pytest.fixture
def sidecar(upstream: RunningServer, database_url: str, tmp_path: Path) -> Iterator[RunningSidecar]:
    running = start_sidecar(sidecar_settings(upstream.url, database_url, tmp_path / "spool"))
    yield running
    running.stop()


@pytest.fixture
def sink() -> Iterator[tuple[WebhookSink, RunningServer]]:
    """A webhook receiver (Slack- or Alertmanager-shaped by path) on port 0."""
    app = WebhookSink()
    server = start_server(app)
    yield app, server
    server.stop()
