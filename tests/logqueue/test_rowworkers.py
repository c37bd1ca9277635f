"""Rows built in a worker process are the rows built in-process: verdicts, features, unknown
models and unreadable records included; a dead or stuck worker is replaced, and a record that
fails twice is logged without its schema check."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from sidecar.logqueue.rowbuild import BuildOptions, BuiltBatch
from sidecar.logqueue.rowworkers import RowBuilder
from sidecar.settings import ComplianceSettings, SchemaRuleSettings
from sidecar.testing.factories import exchange
from tests.helpers import wait_for
from tests.logqueue.faults import DIE, STALL, build_with_faults

SCHEMAS = str(Path(__file__).resolve().parents[2] / "schemas")
CATALOG = {"tiny": None, "support": "tiny"}
OPTIONS = BuildOptions("full", 1 << 20, drift_features=True)
encode = msgspec.msgpack.Encoder().encode


def record(content: str, model: str = "support", index: int = 0, **request: Any) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "Ticket: printer"}], **request}
    response = {"id": f"chatcmpl-{index}", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}]}  # fmt: skip
    return encode(exchange(id=f"{index:032x}", request_body=orjson.dumps(body),
                           response_body=orjson.dumps(response)))  # fmt: skip


RECORDS = [
    record(orjson.dumps({"category": "bug", "priority": 1, "sentiment": "angry",
                         "summary": "x", "needs_human": False}).decode(), index=1),
    record('{"priority": 9}', index=2),
    record("hello", model="tiny", index=3),  # no rule applies: no verdict
    record("[1]", model="new-adapter", index=4, response_format={"type": "json_object"}),
    b"\x00not a record",
]  # fmt: skip


def builder(workers: int) -> RowBuilder:
    compliance = ComplianceSettings(
        schemas_dir=SCHEMAS, rules=[SchemaRuleSettings(schema="support_triage", model="support")]
    )
    return RowBuilder(compliance, OPTIONS, workers)


def summary(batch: BuiltBatch) -> list[tuple[Any, ...]]:
    return [(row.id[-1], row.adapter, row.schema_verdict, bool(row.features)) for row in batch.rows]


async def test_worker_and_in_process_rows_agree() -> None:
    in_process = await builder(0)(RECORDS, CATALOG)
    pooled_builder = builder(1)
    try:
        pooled = await pooled_builder(RECORDS, CATALOG)
    finally:
        pooled_builder.close()
    assert pooled.rows == in_process.rows
    assert summary(pooled) == [
        ("1", "support", "valid", True), ("2", "support", "invalid", True),
        ("3", None, None, True), ("4", None, "invalid", True),
    ]  # fmt: skip
    assert pooled.unknown_models == ["new-adapter"]
    assert len(pooled.unreadable) == 1


def test_under_uvloop_large_batches_keep_going_to_the_same_worker() -> None:
    """The sidecar serves on uvloop, whose add_reader leaves the job socket non-blocking: a
    batch larger than the socket buffer then failed to send and every batch after the first
    was built in-process by a replaced worker."""
    import uvloop

    big = [record("x" * 2000, index=index) for index in range(500)]  # ~1.4 MB a job
    pooled = builder(1)

    async def batches() -> list[int | None]:
        pids: list[int | None] = []
        for _ in range(4):
            built = await pooled(big, CATALOG)
            assert len(built.rows) == len(big)
            assert built.workers_replaced == []
            pids.append(pooled.pids()[0])
        return pids

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            pids = runner.run(batches())
    finally:
        pooled.close()
    assert len(set(pids)) == 1, pids


async def test_a_worker_killed_while_idle_is_replaced_and_counted() -> None:
    rows = builder(1)
    try:
        first = await rows(RECORDS, CATALOG)
        (pid,) = rows.pids()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not Path(f"/proc/{pid}/status").exists()
                 or "zombie" in Path(f"/proc/{pid}/status").read_text(), what="the kill")  # fmt: skip
        replaced = await rows(RECORDS, CATALOG)
        again = await rows(RECORDS, CATALOG)  # the fresh worker carries on
    finally:
        rows.close()
    assert replaced.rows == first.rows
    assert replaced.workers_replaced == ["died"]
    assert again.rows == first.rows
    assert again.workers_replaced == []


def faulty_builder(workers: int = 1, deadline_s: float = 0.5) -> RowBuilder:
    compliance = ComplianceSettings(
        schemas_dir=SCHEMAS, rules=[SchemaRuleSettings(schema="support_triage", model="support")]
    )
    return RowBuilder(
        compliance, OPTIONS, workers, record_deadline_s=deadline_s, build=build_with_faults
    )


async def test_a_record_past_its_deadline_is_retried_once_then_logged_without_its_check() -> None:
    poison = record("stuck " + STALL.decode(), index=7)
    rows = faulty_builder()
    try:
        built = await rows([RECORDS[0], poison, RECORDS[1]], CATALOG)
        after = await rows(RECORDS[:2], CATALOG)  # the replacement worker builds the next batch
    finally:
        rows.close()
    by_id = {row.id[-1]: row for row in built.rows}
    assert sorted(by_id) == ["1", "2", "7"]
    stuck = by_id["7"]
    assert (stuck.schema_name, stuck.schema_verdict, stuck.features) == (
        "support_triage", "check_timeout", None,
    )  # fmt: skip
    assert "record_deadline_s (0.5 s) twice" in stuck.schema_errors[0]["message"]  # type: ignore[index]
    assert stuck.response_body is not None  # everything else is logged
    assert (by_id["1"].schema_verdict, by_id["2"].schema_verdict) == ("valid", "invalid")
    assert built.degraded == ["check_timeout"]
    assert built.workers_replaced == ["deadline", "deadline"]
    assert [row.schema_verdict for row in after.rows] == ["valid", "invalid"]


async def test_a_record_that_kills_its_worker_is_quarantined_after_one_retry() -> None:
    poison = record("crash " + DIE.decode(), index=8)
    rows = faulty_builder(workers=2)
    try:
        built = await rows([RECORDS[0], RECORDS[1], poison, RECORDS[2]], CATALOG)
    finally:
        rows.close()
    verdicts = {row.id[-1]: row.schema_verdict for row in built.rows}
    assert verdicts == {"1": "valid", "2": "invalid", "8": "check_timeout", "3": None}
    assert built.degraded == ["worker_died"]
    assert built.workers_replaced == ["died", "died"]


async def test_cancelling_a_build_kills_its_stuck_worker() -> None:
    """Shutdown and the drain deadline cancel the writer: a stuck worker must not outlive it."""
    rows = faulty_builder(deadline_s=3600)
    try:
        await rows(RECORDS[:1], CATALOG)  # started and warm
        worker = rows._slots[0]
        assert worker is not None
        task = asyncio.ensure_future(rows([record(STALL.decode(), index=9)], CATALOG))
        while worker.progress[0] < 0:
            await asyncio.sleep(0.01)  # until it is inside the record
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert worker.process.exitcode == -signal.SIGKILL  # killed and reaped, not left running
    finally:
        rows.close()


async def test_in_process_building_checks_a_redos_pattern_in_linear_time() -> None:
    poison = record(orjson.dumps({"s": "a" * 50_000 + "b"}).decode(), index=5,
                    response_format={"type": "json_schema", "json_schema": {"name": "redos",
                                     "schema": {"properties": {"s": {"pattern": "^(a+)+$"}}}}})  # fmt: skip
    built = await builder(0)([poison, RECORDS[0]], CATALOG)
    assert [(row.schema_name, row.schema_verdict) for row in built.rows] == [
        ("request:redos", "invalid"), ("support_triage", "valid"),
    ]  # fmt: skip


def test_a_worker_leaves_when_its_sidecar_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "owner.py"
    script.write_text(
        "import asyncio, os, sys\n"
        "from sidecar.logqueue.rowbuild import BuildOptions\n"
        "from sidecar.logqueue.rowworkers import RowBuilder\n"
        "from sidecar.settings import ComplianceSettings\n"
        "async def main():\n"
        "    rows = RowBuilder(ComplianceSettings(), BuildOptions('full', 1 << 20, True), 1)\n"
        "    asyncio.ensure_future(rows([b'x'], {}))\n"
        "    while not rows.pids():  # the worker is starting; it is still importing\n"
        "        await asyncio.sleep(0)\n"
        "    print(*rows.pids(), flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "if __name__ == '__main__':\n"
        "    asyncio.run(main())\n"
    )
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    assert owner.stdout is not None
    workers = [int(pid) for pid in owner.stdout.readline().split()]
    assert workers
    owner.kill()  # SIGKILL, maybe before the worker even started: no chance to stop the pool
    owner.wait(10)
    owner.stdout.close()
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
             timeout_s=10, what="the orphaned worker to exit")  # fmt: skip
