from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sidecar.errors import ConfigError
from sidecar.judge.rubric import (
    ANSWER_END,
    ANSWER_START,
    DEFAULT_RUBRIC,
    JudgeReplyError,
    NotJudgeable,
    judge_input,
    judge_messages,
    load_rubric,
    parse_verdict,
    verdict_format,
)

CHAT = {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": [{"type": "text", "text": "Hi?"}]}]}  # fmt: skip
ANSWER = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}}]}


def test_a_rubric_file_loads_with_its_scale_weights_and_reference(tmp_path: Path) -> None:
    path = tmp_path / "triage.yaml"
    path.write_text(
        "name: triage\nscale: [1, 10]\nreference_field: metadata.expected\ncriteria:\n"
        "  - {name: priority, description: Right priority, weight: 2}\n"
        "  - {name: summary, description: Faithful summary}\n"
    )
    rubric = load_rubric(path)
    assert (rubric.name, rubric.scale_min, rubric.scale_max) == ("triage", 1, 10)
    assert [c.weight for c in rubric.criteria] == [2.0, 1.0]
    assert rubric.reference_field == "metadata.expected"
    scores = parse_verdict('{"scores": {"priority": 10, "summary": 4}, "rationale": "ok"}', rubric)
    assert scores.overall == pytest.approx(8.0)
    assert scores.normalized == pytest.approx(7 / 9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("criteria: []\n", "criteria must be a non-empty list"),
        ("scale: [5, 1]\ncriteria: [{name: a}]\n", "scale must be [low, high]"),
        ("criteria: [{name: a}]\ncolour: red\n", "unknown key 'colour'"),
        ("criteria: [{name: a, weight: -1}]\n", "criteria[0].weight"),
        ("criteria: [{name: a}, {name: a}]\n", "must be unique"),
    ],
)
def test_a_bad_rubric_names_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"rubric .*bad\.yaml") as error:
        load_rubric(path)
    assert message in str(error.value)


def test_the_version_changes_when_the_rubric_text_does(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("criteria: [{name: a, description: one}]\n")
    first = load_rubric(path).version
    path.write_text("criteria: [{name: a, description: two}]\n")
    assert load_rubric(path).version != first
    assert len(first) == 12


def test_the_judge_sees_the_conversation_the_answer_and_the_reference() -> None:
    request = {**CHAT, "metadata": {"expected": "Hello!"}}
    item = judge_input(request, ANSWER, "metadata.expected")
    assert "[system]\nBe brief." in item.prompt
    assert "[user]\nHi?" in item.prompt
    messages = judge_messages(DEFAULT_RUBRIC, item)
    assert f"{ANSWER_START}Hello.{ANSWER_END}" in messages[1]["content"]
    assert "## Reference answer\nHello!" in messages[1]["content"]
    assert "correctness" in messages[0]["content"]


def test_completions_and_tool_calls_are_judgeable() -> None:
    item = judge_input({"prompt": "2+2="}, {"choices": [{"text": " 4"}]}, None)
    assert (item.prompt, item.answer) == ("2+2=", " 4")
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    tool = {"choices": [{"message": {"content": None, "tool_calls": [call]}}]}
    assert '"name":"f"' in judge_input(CHAT, tool, None).answer


@pytest.mark.parametrize(
    ("request_body", "response_body", "reason"),
    [
        (None, None, "bodies not stored"),
        ("text", ANSWER, "not OpenAI JSON"),
        ({"messages": []}, ANSWER, "empty prompt"),
        (CHAT, {"choices": []}, "empty answer"),
    ],
)
def test_requests_without_content_are_not_judgeable(
    request_body: object, response_body: object, reason: str
) -> None:
    with pytest.raises(NotJudgeable, match=reason):
        judge_input(request_body, response_body, None)


def test_the_response_format_asks_for_every_criterion_in_range() -> None:
    schema = verdict_format(DEFAULT_RUBRIC)["json_schema"]["schema"]
    scores = schema["properties"]["scores"]
    assert scores["required"] == ["correctness", "helpfulness", "format", "tone"]
    assert scores["properties"]["tone"] == {"type": "integer", "minimum": 1, "maximum": 5}


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ("Looks good, 4/5", "not JSON"),
        ('{"rationale": "x"}', "no scores"),
        ('{"scores": {"correctness": 4}}', "'helpfulness' missing"),
        ('{"scores": {"correctness": 9, "helpfulness": 4, "format": 4, "tone": 4}}', "outside 1-5"),
        (
            '{"scores": {"correctness": true, "helpfulness": 4, "format": 4, "tone": 4}}',
            "not a number",
        ),
        (None, "not JSON"),
    ],
)
def test_an_unusable_reply_is_an_error_never_a_score(reply: str | None, problem: str) -> None:
    with pytest.raises(JudgeReplyError, match=problem):
        parse_verdict(reply, DEFAULT_RUBRIC)


def test_a_good_reply_gives_the_weighted_mean() -> None:
    reply = orjson.dumps({"scores": {"correctness": 5, "helpfulness": 4, "format": 3, "tone": 4},
                          "rationale": "fine"}).decode()  # fmt: skip
    scores = parse_verdict(reply, DEFAULT_RUBRIC)
    assert scores.overall == 4.0
    assert scores.normalized == 0.75
    assert scores.rationale == "fine"
