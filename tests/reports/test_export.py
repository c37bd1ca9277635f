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
from tests.reports.test_base import row

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


def judge_rows(url: str, scores: dict[int, float | None]) -> None:
    """Judgements as the judge job leaves them: scored on the built-in 1-5 rubric, or an error."""
    import asyncio

    import sqlalchemy as sa

    from sidecar.store.engine import create_engine
    from sidecar.store.tables import judgements_table

    rows = [
        {"request_id": f"{n:032x}", "request_started_at": NOW - timedelta(minutes=5 + n),
         "model": "support", "adapter": "support", "sample_reason": "random",
         "status": "scored" if score is not None else "error", "claimed_by": "r1",
         "claimed_at": NOW, "judged_at": NOW, "rubric": "default", "rubric_version": "v1",
         "judge_model": "judge", "score": score,
         "score_normalized": None if score is None else (score - 1) / 4,
         "scores": None, "attempts": 1}
        for n, score in scores.items()
    ]  # fmt: skip

    async def insert() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(sa.insert(judgements_table), rows)
        finally:
            await engine.dispose()

    asyncio.run(insert())


def test_low_score_selects_judged_rows_at_or_below_max_score_with_the_score_in_metadata(
    logged: str, tmp_path: Path
) -> None:
    # 4 (thanks!) judged 2.0, 5 (escalate me) 3.5, 3 (refund) 3.0; 1 was an error: no score
    judge_rows(logged, {4: 2.0, 5: 3.5, 3: 3.0, 1: None})
    out = tmp_path / "low.jsonl"
    result = export(logged, out, "--select", "low-score")
    assert result.exit_code == 0, result.output
    examples = lines(out)
    assert [e["messages"][0]["content"] for e in examples] == ["thanks!",
                                                               "refund please, mail [EMAIL]"]  # fmt: skip
    assert examples[0]["metadata"] == {
        "judge_score": 2.0, "judge_score_normalized": 0.25, "judge_rubric": "default"
    }  # fmt: skip
    assert "by reason: judge_low_score 2" in result.output
    none = export(logged, tmp_path / "none.jsonl", "--select", "low-score", "--max-score", "1")
    assert "no judge score at or below 1 in this window" in none.output
    strict = tmp_path / "strict.jsonl"
    assert export(logged, strict, "--select", "low-score", "--max-score", "2").exit_code == 0
    assert [e["messages"][0]["content"] for e in lines(strict)] == ["thanks!"]


def test_judge_scores_join_the_hard_and_good_rules(logged: str, tmp_path: Path) -> None:
    judge_rows(logged, {4: 2.0, 5: 4.5})
    good = tmp_path / "good.jsonl"
    assert export(logged, good, "--select", "good").exit_code == 0
    assert lines(good) == []  # thanks! was liked, but the judge scored it 2: no longer good
    hard = tmp_path / "hard.jsonl"
    result = export(logged, hard, "--select", "hard")
    examples = {e["messages"][0]["content"]: e for e in lines(hard)}
    assert "thanks!" in examples
    assert "judge_low_score 1" in result.output
    assert examples["escalate me"]["metadata"]["judge_score"] == 4.5  # hard for escalation
    assert "metadata" not in examples["triage: printer on fire"]  # never judged
