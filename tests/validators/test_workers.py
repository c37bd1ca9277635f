"""Schema checks in a worker process give the verdicts the in-process check gives."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import orjson

from sidecar.settings import ComplianceSettings, SchemaRuleSettings
from sidecar.validators.selection import Exchanged
from sidecar.validators.workers import SchemaChecks

SCHEMAS = str(Path(__file__).resolve().parents[2] / "schemas")


def target(content: str, model: str = "support", **request: Any) -> Exchanged:
    response = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
    return Exchanged("/v1/chat/completions", model, model, request, response, "stop")


TARGETS = [
    target(orjson.dumps({"category": "bug", "priority": 1, "sentiment": "angry",
                         "summary": "x", "needs_human": False}).decode()),
    target('{"priority": 9}'),
    target("hello", model="tiny"),  # no rule matches: no verdict, never sent to the worker
    target("[1]", model="tiny", response_format={"type": "json_object"}),
]  # fmt: skip


def settings(workers: int) -> ComplianceSettings:
    return ComplianceSettings(
        schemas_dir=SCHEMAS, workers=workers,
        rules=[SchemaRuleSettings(schema="support_triage", model="support")],
    )  # fmt: skip


async def test_worker_process_and_in_process_checks_agree() -> None:
    in_process = await SchemaChecks(settings(0))(TARGETS)
    pooled_checks = SchemaChecks(settings(1))
    try:
        pooled = await pooled_checks(TARGETS)
    finally:
        pooled_checks.close()
    assert pooled == in_process
    assert [v.verdict if v else None for v in pooled] == ["valid", "invalid", None, "invalid"]


async def test_a_dead_worker_falls_back_to_checking_in_process() -> None:
    checks = SchemaChecks(settings(1))
    try:
        await checks(TARGETS)
        assert checks._pool is not None
        for pid in list(checks._pool._processes):
            os.kill(pid, signal.SIGKILL)
        verdicts = await checks(TARGETS)
        assert [v.verdict if v else None for v in verdicts] == ["valid", "invalid", None, "invalid"]
        again = await checks(TARGETS)  # a fresh worker takes over
        assert again == verdicts
    finally:
        checks.close()
