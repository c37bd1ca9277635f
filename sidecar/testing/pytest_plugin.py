"""A pytest plugin: a fake vLLM, a sidecar in front of it, a webhook sink, all on port 0.

For this project's tests and for a team testing its own configuration: add
``pytest_plugins = ["sidecar.testing.pytest_plugin"]`` to a ``conftest.py``. ``database_url`` is a
throwaway SQLite file here; a conftest may override it (this project's runs every database test
on SQLite and Postgres). ``sidecar`` logs to it through a private spool with the writer tuned for
tests (:func:`sidecar.testing.harness.sidecar_settings`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.fake_vllm import FakeVllm, FakeVllmConfig, create_fake_vllm
from sidecar.testing.harness import RunningSidecar, sidecar_settings, start_sidecar
from sidecar.testing.servers import RunningServer, start_server
from sidecar.testing.webhook_sink import WebhookSink


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A SQLite file of this test (the sidecar creates its tables at start)."""
    return f"sqlite:///{tmp_path / 'sidecar.db'}"


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
