"""Fixtures for hostile-input tests: sidecars in front of the fake vLLM or a raw upstream.

Servers live for a whole module, so hypothesis examples reuse them (a property test's examples
all run inside one test call). ``CASES`` counts the examples each property test ran; the totals
are printed at the end of the run as "hostile input cases".
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from psycopg import sql

from sidecar.fake_vllm import FakeVllmConfig, create_fake_vllm
from sidecar.testing.harness import RunningSidecar, start_sidecar
from sidecar.testing.servers import RunningServer, start_server
from tests.conftest import TEST_DATABASE_PREFIX
from tests.helpers import sidecar_settings
from tests.hostile.wire import RawUpstream, exchange, request

LIMIT_BYTES = 256 * 1024  # proxy.max_body_bytes for the hostile sidecars
CASES: Counter[str] = Counter()


def count_case(name: str) -> None:
    CASES[name] += 1


def examples(count: int) -> settings:
    """Hypothesis settings for a property run against live servers: exactly ``count`` examples
    (fewer only if the strategy runs out), no deadline (a real round trip varies), no example
    database (each run draws afresh; a failure prints its falsifying example)."""
    return settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not CASES:
        return
    terminalreporter.section("hostile input cases")
    for name, count in sorted(CASES.items()):
        terminalreporter.write_line(f"{count:6d}  {name}")
    terminalreporter.write_line(f"{sum(CASES.values()):6d}  in all")


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def assert_still_serving(sidecar: RunningSidecar) -> None:
    """The sidecar answers an ordinary request (it did not crash or wedge)."""
    received = exchange(port_of(sidecar.proxy_url), request(headers=[(b"connection", b"close")]))
    assert received.statuses == [200]


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """One client for the whole run (a fresh httpx client costs ~100 ms of TLS setup)."""
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[RunningServer]:
    server = start_server(create_fake_vllm(FakeVllmConfig()))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def module_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'sidecar.db'}"


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ],
)
def module_backend_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh database for a whole module, once on SQLite and once on Postgres."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('backend') / 'sidecar.db'}"
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    name = f"{TEST_DATABASE_PREFIX}{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="module")
def hostile_sidecar(
    fake_upstream: RunningServer, module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningSidecar]:
    """A sidecar (SQLite log) in front of the fake vLLM, with a small body limit."""
    settings = sidecar_settings(
        fake_upstream.url,
        module_database_url,
        tmp_path_factory.mktemp("spool"),
        proxy={"max_body_bytes": LIMIT_BYTES},
    )
    running = start_sidecar(settings)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def raw_upstream() -> Iterator[RawUpstream]:
    upstream = RawUpstream().start()
    yield upstream
    upstream.close()


@pytest.fixture(scope="module")
def raw_sidecar(
    raw_upstream: RawUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningSidecar]:
    """A sidecar in front of :class:`RawUpstream`, which records the exact bytes forwarded."""
    directory = tmp_path_factory.mktemp("raw")
    settings = sidecar_settings(
        raw_upstream.url,
        f"sqlite:///{directory / 'sidecar.db'}",
        directory / "spool",
        proxy={"max_body_bytes": LIMIT_BYTES},
        upstream={"models_refresh_s": 3600.0},  # keep model-list polls out of the recording
    )
    running = start_sidecar(settings)
    yield running
    running.stop()
