"""Export logged traffic as an OpenAI chat fine-tuning set (JSONL), for the next retraining.

``hard``: outputs that failed their schema (invalid, unparseable, truncated), got a thumbs-down
or a low score, were escalated, or that the LLM judge scored at or below ``max_score``. Their
assistant turn is what the model said, to be corrected before training. ``good``: outputs users
were satisfied with and that no hard reason applies to. ``low-score``: only the judge's low
scores. ``all``: every successful chat completion. Duplicated prompts are written once; bodies
are exported as stored, so a redacted log gives a redacted set. A judged example carries its
score in ``metadata``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.records import TimeWindow
from sidecar.reports.base import scoped
from sidecar.store.tables import feedback_table, judgements_table, requests_table

Selection = Literal["hard", "good", "all", "low-score"]
SELECTIONS: tuple[Selection, ...] = ("hard", "good", "all", "low-score")
FAILED_VERDICTS = ("invalid", "unparseable", "truncated")
DEFAULT_MAX_SCORE = 3.0  # on the rubric's scale: 1-3 of the built-in 1-5 is a low score


@dataclass(frozen=True, slots=True)
class Candidate:
    request_body: Any
    response_body: Any
    schema_verdict: str | None
    unsatisfied: int
    satisfied: int
    escalated: int
    judge_score: float | None = None  # the judge's overall score, on the rubric's scale
    judge_score_normalized: float | None = None  # the same, mapped to 0-1
    judge_rubric: str | None = None


@dataclass
class ExportSummary:
    written: int = 0
    holdout: int = 0
    duplicates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # why rows were not exported
    reasons: Counter[str] = field(default_factory=Counter)  # why exported rows were chosen


def reasons_for(candidate: Candidate, max_score: float = DEFAULT_MAX_SCORE) -> list[str]:
    """Why a row is a hard case (empty when it is not)."""
    found = []
    if candidate.schema_verdict in FAILED_VERDICTS:
        found.append(f"schema_{candidate.schema_verdict}")
    if candidate.unsatisfied:
        found.append("thumbs_down")
    if candidate.escalated:
        found.append("escalated")
    if candidate.judge_score is not None and candidate.judge_score <= max_score:
        found.append("judge_low_score")
    return found


def choose(
    candidate: Candidate, selection: Selection, max_score: float = DEFAULT_MAX_SCORE
) -> list[str] | None:
    """The reasons to export ``candidate`` under ``selection``, or None to leave it out."""
    hard = reasons_for(candidate, max_score)
    if selection == "low-score":
        return ["judge_low_score"] if "judge_low_score" in hard else None
    if selection == "hard":
        return hard or None
    if selection == "good":
        good = candidate.satisfied and not hard
        return ["satisfied"] if good else None
    return hard or ["logged"]


def training_example(request_body: Any, response_body: Any) -> dict[str, Any] | None:
    """``{"messages": [...], "tools": [...]}`` from a stored chat request and response."""
    if not isinstance(request_body, dict) or not isinstance(response_body, dict):
        return None
    messages = request_body.get("messages")
    choices = response_body.get("choices")
    if (
        not isinstance(messages, list)
        or not messages
        or not isinstance(choices, list)
        or not choices
    ):
        return None
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    if not isinstance(message, dict):
        return None
    answer: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        answer["tool_calls"] = message["tool_calls"]
    elif not isinstance(answer["content"], str):
        return None
    example: dict[str, Any] = {"messages": [*messages, answer]}
    if isinstance(request_body.get("tools"), list):
        example["tools"] = request_body["tools"]
    return example


def prompt_key(example: dict[str, Any]) -> str:
    """Identity of the prompt (everything but the assistant's answer), for deduplication."""
    prompt = {"messages": example["messages"][:-1], "tools": example.get("tools")}
    return hashlib.sha256(orjson.dumps(prompt, option=orjson.OPT_SORT_KEYS)).hexdigest()


def in_holdout(key: str, share: float) -> bool:
    """A stable split: the same prompt always lands on the same side."""
    return int(key[:8], 16) / 0xFFFFFFFF < share


async def count_candidates(engine: AsyncEngine, window: TimeWindow) -> int:
    query = scoped(sa.select(sa.func.count()).where(_chat_ok()), requests_table, window)
    async with engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


async def candidates(engine: AsyncEngine, window: TimeWindow) -> AsyncIterator[Candidate]:
    """Successful chat completions in the window, with their feedback folded in."""
    rated = feedback_table
    opinions = (
        sa.select(
            rated.c.request_id,
            sa.func.sum(sa.case((rated.c.satisfied, 0), else_=1)).label("unsatisfied"),
            sa.func.sum(sa.case((rated.c.satisfied, 1), else_=0)).label("satisfied"),
            sa.func.sum(sa.case((rated.c.escalated, 1), else_=0)).label("escalated"),
        )
        .group_by(rated.c.request_id)
        .subquery()
    )
    table = requests_table
    judged = judgements_table
    scored = sa.and_(judged.c.request_id == table.c.id, judged.c.status == "scored")
    query = scoped(
        sa.select(
            table.c.request_body, table.c.response_body, table.c.schema_verdict,
            opinions.c.unsatisfied, opinions.c.satisfied, opinions.c.escalated,
            judged.c.score, judged.c.score_normalized, judged.c.rubric,
        )
        .select_from(
            table.outerjoin(opinions, opinions.c.request_id == table.c.id).outerjoin(judged, scored)
        )
        .where(_chat_ok())
        .order_by(table.c.started_at),
        table,
        window,
    )  # fmt: skip
    async with engine.connect() as connection:
        result = await connection.stream(query)
        async for row in result:
            yield Candidate(row.request_body, row.response_body, row.schema_verdict,
                            int(row.unsatisfied or 0), int(row.satisfied or 0), int(row.escalated or 0),
                            row.score, row.score_normalized, row.rubric)  # fmt: skip


def _chat_ok() -> sa.ColumnElement[bool]:
    table = requests_table
    return sa.and_(table.c.path == "/v1/chat/completions", table.c.status == 200)


async def export_training_data(
    engine: AsyncEngine,
    window: TimeWindow,
    selection: Selection,
    out: Any,
    holdout_out: Any | None = None,
    holdout_share: float = 0.0,
    on_row: Any = None,
    max_score: float = DEFAULT_MAX_SCORE,
) -> ExportSummary:
    """Write the chosen examples as JSONL lines to ``out`` (and a holdout share to ``holdout_out``).

    ``out`` and ``holdout_out`` are binary files opened by the caller (so a bad path fails
    before any work); ``on_row`` is called once per candidate row (a progress bar).
    ``max_score``: a judge score at or below it is a hard case (``low-score`` selects only those).
    """
    summary = ExportSummary()
    seen: set[str] = set()
    async for candidate in candidates(engine, window):
        if on_row is not None:
            on_row()
        chosen = choose(candidate, selection, max_score)
        if chosen is None:
            continue
        example = training_example(candidate.request_body, candidate.response_body)
        if example is None:
            body_missing = candidate.request_body is None or candidate.response_body is None
            summary.skipped["bodies not stored" if body_missing else "not a chat message"] += 1
            continue
        key = prompt_key(example)
        if key in seen:
            summary.duplicates += 1
            continue
        seen.add(key)
        if candidate.judge_score is not None:
            example["metadata"] = {
                "judge_score": candidate.judge_score,
                "judge_score_normalized": candidate.judge_score_normalized,
                "judge_rubric": candidate.judge_rubric,
            }
        line = orjson.dumps(example) + b"\n"
        if holdout_out is not None and in_holdout(key, holdout_share):
            holdout_out.write(line)
            summary.holdout += 1
        else:
            out.write(line)
            summary.written += 1
        summary.reasons.update(chosen)
    return summary
