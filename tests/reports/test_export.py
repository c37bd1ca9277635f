"""Training-data export: selection, dedupe, redaction kept, holdout, clear errors."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.cli import main
from sidecar.records import Feedback
from sidecar.store.feedback import upsert_feedback
from sidecar.store.writes import insert_requests
from tests.reports.test_reports import row

NOW = datetime.now(UTC)


def chat(n: int, question: str, answer: str, **fields: Any) -> Any:
    request = {"model": "support", "messages": [{"role": "user", "content": question}]}
    response = {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]}
    base = row(n, minutes_ago=5, **fields)
    return dataclasses.replace(base, started_at=NOW - timedelta(minutes=5 + n),
                               request_body=request, response_body=response)  # fmt: skip


@pytest.fixture
async def logged(engine: AsyncEngine, migrated_database_url: str) -> str:
    rows = [
        chat(1, "triage: printer on fire", '{"category": 1}', verdict="invalid"),
        chat(2, "triage: printer on fire", '{"category": 2}', verdict="invalid"),  # same prompt
        chat(3, "refund please, mail [EMAIL]", "ok"),  # stored redacted
        chat(4, "thanks!", "you're welcome", verdict="valid"),
        chat(5, "escalate me", "no"),
        dataclasses.replace(
            chat(6, "x", "y"), request_body=None, response_body=None
        ),  # policy none
    ]
    await insert_requests(engine, rows)
    for n, satisfied, escalated in (
        (3, False, False),
        (4, True, False),
        (5, True, True),
        (6, False, False),
    ):
        await upsert_feedback(engine, Feedback(f"{n:032x}", "u", "up" if satisfied else "down",
                                               5 if satisfied else 1, satisfied, escalated, None, NOW, NOW))  # fmt: skip
    return migrated_database_url


def export(url: str, out: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["export", "training-data", "--database-url", url,
                                     "--since", "1d", "--out", str(out), *args])  # fmt: skip


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_hard_cases_are_exported_once_per_prompt_as_fine_tuning_jsonl(
    logged: str, tmp_path: Path
) -> None:
    out = tmp_path / "hard.jsonl"
    result = export(logged, out, "--select", "hard")
    assert result.exit_code == 0, result.output
    examples = lines(out)
    questions = [example["messages"][0]["content"] for example in examples]
    assert questions == ["escalate me", "refund please, mail [EMAIL]", "triage: printer on fire"]
    assert examples[0]["messages"][-1] == {"role": "assistant", "content": "no"}
    assert set(examples[0]) == {"messages"}
    assert "wrote 3 examples" in result.output
    assert "duplicate prompts skipped: 1" in result.output
    assert "schema_invalid 1" in result.output
    assert "thumbs_down 1" in result.output
    assert "escalated 1" in result.output
    assert "skipped 1: bodies not stored" in result.output


def test_good_examples_and_holdout_split(logged: str, tmp_path: Path) -> None:
    out = tmp_path / "good.jsonl"
    assert export(logged, out, "--select", "good").exit_code == 0
    assert [example["messages"][0]["content"] for example in lines(out)] == ["thanks!"]
    everything = tmp_path / "all.jsonl"
    result = export(logged, everything, "--select", "all", "--holdout", "0.5")
    assert result.exit_code == 0, result.output
    held = tmp_path / "all.holdout.jsonl"
    assert len(lines(everything)) + len(lines(held)) == 4  # 5 prompts with bodies, one duplicate


def test_unwritable_output_fails_before_any_work(logged: str, tmp_path: Path) -> None:
    result = export(logged, tmp_path / "missing-dir" / "x.jsonl")
    assert result.exit_code == 1
    assert "cannot write" in result.output
