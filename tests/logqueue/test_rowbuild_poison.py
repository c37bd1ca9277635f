"""No single record stops the request log (issue 13, finding 1), through a running sidecar.

A request may bring its own schema; a schema with a catastrophic pattern (``^(a+)+$``) and an
output that does not match wedged the row worker, the writer and, with ``writer.workers: 0``,
the whole sidecar. Now patterns are matched in linear time, every record's build has a deadline
in the worker, a stuck or killed worker is replaced, and shutdown finishes within its drain
deadline whatever a worker is doing.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.logqueue.rowbuild import BuildOptions, build_batch
from sidecar.records import Verdict
from sidecar.settings import ComplianceSettings, WriterSettings
from sidecar.testing.harness import RunningSidecar, start_sidecar
from sidecar.testing.servers import RunningServer
from sidecar.validators.compliance import Compliance
from tests.helpers import fetch_rows, sidecar_settings, wait_for, wait_for_rows
from tests.logqueue.test_rowworkers import record

REDOS_FORMAT = {"type": "json_schema", "json_schema": {"name": "redos", "schema": {
    "type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}}}  # fmt: skip
# Python's re needs about 2**40 steps for this one; a header keeps it under the fake's limits.
REDOS_OUTPUT = orjson.dumps({"s": "a" * 5_000 + "!"}).decode()
DRAIN_S = 10.0  # Sidecar.stop's drain deadline, as run_sidecar calls it


def chat(client: httpx.Client, output: str = "hello", **body: Any) -> str:
    response = client.post(
        "/v1/chat/completions",
        json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], **body},
        headers={"x-fake-output": output},
    )
    assert response.status_code == 200
    return response.headers["x-request-id"]


def metric(running: RunningSidecar, line_start: str) -> float:
    text = httpx.get(f"{running.admin_url}/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(line_start))  # fmt: skip


@pytest.fixture(params=[0, 1], ids=["in-process", "one-worker"])
def workers(request: pytest.FixtureRequest) -> int:
    value: int = request.param
    return value


@pytest.fixture
def running(
    upstream: RunningServer, database_url: str, tmp_path: Path, workers: int
) -> Iterator[RunningSidecar]:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    # The operator's own schema may backtrack (a backreference): bounded by its limit.
    (schemas / "echo.json").write_text(
        '{"type": "object", "properties": {"s": {"pattern": "(a*)*\\\\1b"}}}'
    )
    settings = sidecar_settings(
        upstream.url, database_url, tmp_path / "spool",
        writer={"workers": workers}, compliance={"schemas_dir": str(schemas)},
    )  # fmt: skip
    sidecar = start_sidecar(settings)
    yield sidecar
    sidecar.stop()


def test_a_redos_schema_in_the_request_does_not_stop_the_log(
    running: RunningSidecar, database_url: str
) -> None:
    with httpx.Client(base_url=running.proxy_url, timeout=30) as client:
        poison = chat(client, REDOS_OUTPUT, response_format=REDOS_FORMAT)
        ids = [chat(client) for _ in range(200)]
        assert httpx.get(f"{running.admin_url}/healthz").status_code == 200
    rows = wait_for_rows(database_url, 201)
    assert sorted(row["id"] for row in rows) == sorted([poison, *ids])
    poisoned = next(row for row in rows if row["id"] == poison)
    assert (poisoned["schema_name"], poisoned["schema_verdict"]) == ("request:redos", "invalid")
    assert poisoned["schema_errors"][0]["path"] == "/s"
    assert metric(running, "sidecar_log_rows_degraded_total") == 0


def test_a_pattern_past_its_backtracking_limit_is_logged_as_check_timeout_and_counted(
    running: RunningSidecar, database_url: str
) -> None:
    output = orjson.dumps({"s": "a" * 6_000}).decode()
    with httpx.Client(base_url=running.proxy_url, timeout=30) as client:
        response = client.post(
            "/v1/chat/completions",
            json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-fake-output": output, "x-sidecar-schema": "echo"},
        )
        request_id = response.headers["x-request-id"]
        after = chat(client)
    rows = wait_for_rows(database_url, 2)
    verdicts = {row["id"]: row["schema_verdict"] for row in rows}
    assert verdicts == {request_id: Verdict.CHECK_TIMEOUT, after: None}
    assert metric(running, 'sidecar_log_rows_degraded_total{reason="backtrack_limit"}') == 1


@pytest.fixture
def worker_sidecar(upstream: RunningServer, tmp_path: Path) -> Iterator[tuple[RunningSidecar, str]]:
    database_url = f"sqlite:///{tmp_path / 'sidecar.db'}"
    settings = sidecar_settings(
        upstream.url, database_url, tmp_path / "spool",
        writer={"workers": 1, "record_deadline_s": 3600.0},  # only the test stops a worker
    )  # fmt: skip
    sidecar = start_sidecar(settings)
    yield sidecar, database_url
    if sidecar.thread.is_alive():  # the shutdown test stops it itself
        sidecar.stop()


def warm_worker(running: RunningSidecar, database_url: str, client: httpx.Client) -> int:
    chat(client)
    wait_for_rows(database_url, 1)
    (pid,) = running.sidecar.row_builder.pids()
    return pid


def test_a_worker_killed_by_sigkill_is_replaced_and_its_rows_land(
    worker_sidecar: tuple[RunningSidecar, str],
) -> None:
    running, database_url = worker_sidecar
    with httpx.Client(base_url=running.proxy_url, timeout=30) as client:
        pid = warm_worker(running, database_url, client)
        os.kill(pid, signal.SIGSTOP)  # holds the next record, then dies with it
        first = chat(client)
        wait_for(lambda: running.sidecar.row_builder.busy, what="the record to reach the worker")
        os.kill(pid, signal.SIGKILL)
        rows = wait_for_rows(database_url, 2)
        second = chat(client)  # a fresh worker builds the next one
        rows = wait_for_rows(database_url, 3)
    assert {first, second} <= {row["id"] for row in rows}
    assert metric(running, 'sidecar_log_row_workers_replaced_total{reason="died"}') == 1
    assert running.sidecar.row_builder.pids() not in ([], [pid])


def test_shutdown_with_a_stuck_worker_finishes_within_the_drain_deadline(
    worker_sidecar: tuple[RunningSidecar, str],
) -> None:
    running, database_url = worker_sidecar
    with httpx.Client(base_url=running.proxy_url, timeout=30) as client:
        pid = warm_worker(running, database_url, client)
        os.kill(pid, signal.SIGSTOP)  # stuck: no progress, never answers
        stuck = chat(client)
        wait_for(lambda: running.sidecar.row_builder.busy, what="the record to reach the worker")
    running.stop(timeout_s=DRAIN_S + 20)
    assert not running.thread.is_alive()  # it stopped, although the worker never answered
    assert not Path(f"/proc/{pid}").exists()  # and the stuck worker did not outlive it
    # Nothing lost: built again by a fresh worker while draining (the usual case), or, if that
    # took longer than the drain deadline, still in the spool for the next start.
    landed = stuck in {row["id"] for row in fetch_rows(database_url)}
    assert landed or running.sidecar.spool.pending_bytes > 0


def test_a_missing_schemas_directory_on_reload_keeps_the_schemas(
    upstream: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "flag.json").write_text('{"type": "boolean"}')
    database_url = f"sqlite:///{tmp_path / 'sidecar.db'}"
    settings = sidecar_settings(
        upstream.url, database_url, tmp_path / "spool", compliance={"schemas_dir": str(schemas)}
    )
    running = start_sidecar(settings)
    try:
        (schemas / "flag.json").unlink()
        schemas.rmdir()
        assert not running.call(_reload(running))
        with httpx.Client(base_url=running.proxy_url, timeout=30) as client:
            response = client.post(
                "/v1/chat/completions",
                json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]},
                headers={"x-fake-output": "3", "x-sidecar-schema": "flag"},
            )
        rows = wait_for_rows(database_url, 1)
    finally:
        running.stop()
    assert [(r["id"], r["schema_verdict"]) for r in rows] == [
        (response.headers["x-request-id"], "invalid")
    ]
    errors = [r for r in caplog.records if "schemas not reloaded" in r.getMessage()]
    assert errors
    assert errors[0].levelname == "ERROR"
    assert str(schemas) in errors[0].getMessage()


async def _reload(running: RunningSidecar) -> bool:
    return running.sidecar.reload_schemas()


# Patterns made of the pieces catastrophic backtracking is built from: nested and overlapping
# quantifiers, alternations of overlapping branches, anchors.
ATOMS = st.sampled_from(["a", "b", "a|a", "a|ab", ".", "\\w", "[ab]", "a?", "(a+)+", "(a|a)*"])
QUANTIFIERS = st.sampled_from(["", "*", "+", "?", "{1,3}", "{2,}"])
PATTERNS = st.builds(
    lambda parts, start, end: ("^" if start else "") + "".join(parts) + ("$" if end else ""),
    st.lists(st.builds(lambda atom, q: f"({atom}){q}", ATOMS, QUANTIFIERS), min_size=1,
             max_size=4), st.booleans(), st.booleans(),
)  # fmt: skip
OUTPUTS = st.builds(
    lambda unit, count, tail: unit * count + tail,
    st.sampled_from(["a", "ab", "aa", "b"]), st.integers(0, 20_000),
    st.sampled_from(["", "!", "b", "\n"]),
)  # fmt: skip
DEADLINE_S = WriterSettings().record_deadline_s
COMPLIANCE = Compliance(ComplianceSettings(schemas_dir="/nonexistent"))


@settings(max_examples=150, deadline=DEADLINE_S * 1000, database=None)
@given(
    st.lists(PATTERNS, min_size=1, max_size=3),
    st.lists(OUTPUTS, min_size=1, max_size=3),
    st.booleans(),
)
def test_every_records_build_finishes_within_the_deadline(
    patterns: list[str], outputs: list[str], as_property_names: bool
) -> None:
    """Whatever patterns a request's schema holds and whatever the output is, building the
    row (in-process, as ``writer.workers: 0`` does) finishes within the default deadline:
    hypothesis fails any example slower than ``DEADLINE_S``."""
    if as_property_names:
        schema: dict[str, Any] = {"type": "object", "patternProperties": {
            pattern: {"type": "string"} for pattern in patterns}, "additionalProperties": False}  # fmt: skip
        document: Any = {output[:5_000] or "k": "v" for output in outputs}
    else:
        schema = {"type": "object", "properties": {
            f"p{n}": {"type": "string", "pattern": pattern} for n, pattern in enumerate(patterns)}}  # fmt: skip
        document = {f"p{n}": output for n, output in enumerate(outputs)}
    poison = record(orjson.dumps(document).decode(), index=1, response_format={
        "type": "json_schema", "json_schema": {"name": "generated", "schema": schema}})  # fmt: skip
    built = build_batch([poison], {}, BuildOptions("full", 1 << 20, True), COMPLIANCE)
    (row,) = built.rows
    assert row.schema_verdict in {Verdict.VALID, Verdict.INVALID, Verdict.SCHEMA_ERROR}
