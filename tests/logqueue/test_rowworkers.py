"""Rows built in a worker process are the rows built in-process: verdicts, features, unknown
models and unreadable records included; a dead worker falls back to building in-process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import orjson

from sidecar.logqueue.rowbuild import BuildOptions, BuiltBatch
from sidecar.logqueue.rowworkers import RowBuilder
from sidecar.settings import ComplianceSettings, SchemaRuleSettings
from tests.helpers import wait_for
from tests.logqueue.test_rows import exchange

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


async def test_a_dead_worker_falls_back_to_building_in_process() -> None:
    rows = builder(1)
    try:
        first = await rows(RECORDS, CATALOG)
        assert rows._pool is not None
        for pid in list(rows._pool._processes):
            os.kill(pid, signal.SIGKILL)
        fallback = await rows(RECORDS, CATALOG)
        again = await rows(RECORDS, CATALOG)  # a fresh worker takes over
    finally:
        rows.close()
    assert fallback.rows == first.rows
    assert again.rows == first.rows


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
        "    await asyncio.sleep(0)  # the pool is starting; its worker is still importing\n"
        "    print(*rows._pool._processes, flush=True)\n"
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
