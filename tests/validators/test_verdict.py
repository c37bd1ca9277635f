"""Verdicts on outputs: valid, invalid with pointers, unparseable, fenced, truncated (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from sidecar.records import Verdict
from sidecar.validators.extraction import extract_json
from sidecar.validators.registry import SchemaRegistry, compile_schema
from sidecar.validators.verdict import Target, judge

REGISTRY = SchemaRegistry.load(Path(__file__).resolve().parents[2] / "schemas")
TRIAGE = REGISTRY.get("support_triage")

GOOD_TRIAGE = {"category": "billing", "priority": 2, "sentiment": "negative",
               "summary": "Charged twice for March", "needs_human": True,
               "customer_email": "jo@example.com"}  # fmt: skip


def verdict_of(text: str | None, finish_reason: str | None = "stop", validator: Any = TRIAGE):  # type: ignore[no-untyped-def]
    return judge("support_triage", [Target(text, validator)], finish_reason)


def test_valid_output() -> None:
    result = verdict_of(orjson.dumps(GOOD_TRIAGE).decode())
    assert (result.verdict, result.error_count, result.errors) == (Verdict.VALID, 0, ())


def test_invalid_output_lists_errors_with_json_pointers() -> None:
    bad = {**GOOD_TRIAGE, "priority": 9, "customer_email": "not-an-email", "extra": 1}
    result = verdict_of(orjson.dumps(bad).decode())
    assert result.verdict == Verdict.INVALID
    assert result.error_count == 3
    paths = {issue.path for issue in result.errors}
    assert {"/priority", "/customer_email", "/"} == paths


def test_unparseable_output_reports_the_parse_error_position() -> None:
    result = verdict_of('{"category": "billing",')
    assert result.verdict == Verdict.UNPARSEABLE
    assert "position" in result.errors[0].message


def test_truncated_when_the_model_hit_max_tokens() -> None:
    assert verdict_of('{"category": "bil', finish_reason="length").verdict == Verdict.TRUNCATED


def test_a_single_fenced_json_block_is_accepted() -> None:
    text = "```json\n" + orjson.dumps(GOOD_TRIAGE).decode() + "\n```"
    assert verdict_of(text).verdict == Verdict.VALID
    assert extract_json(text).fenced
    assert not extract_json(text, allow_fence=False).ok


def test_empty_huge_and_deeply_nested_outputs_get_a_verdict() -> None:
    assert verdict_of("").verdict == Verdict.UNPARSEABLE
    assert verdict_of(None).verdict == Verdict.UNPARSEABLE
    deep = "[" * 10_000 + "]" * 10_000
    result = verdict_of(deep)
    assert result.verdict == Verdict.UNPARSEABLE
    assert "depth" in result.errors[0].message
    huge = '"' + "x" * (5 * 1024 * 1024) + '"'
    assert verdict_of(huge).verdict == Verdict.UNPARSEABLE


def test_error_list_is_capped_but_the_count_is_not() -> None:
    validator = compile_schema({"type": "array", "items": {"type": "integer"}})
    result = verdict_of(orjson.dumps(["a"] * 20).decode(), validator=validator)
    assert len(result.errors) == 5
    assert result.error_count == 6


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 200) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300)
@given(st.fixed_dictionaries({}, optional={
    "category": st.sampled_from(["billing", "bug", "x"]) | json_values,
    "priority": st.integers(-1, 6) | json_values,
    "sentiment": st.sampled_from(["angry", "neutral"]) | json_values,
    "summary": st.text(max_size=5) | json_values,
    "needs_human": st.booleans() | json_values,
}))  # fmt: skip
def test_verdict_agrees_with_a_direct_jsonschema_call(document: dict[str, Any]) -> None:
    schema = orjson.loads(
        (Path(__file__).resolve().parents[2] / "schemas" / "support_triage.json").read_bytes()
    )
    expected_valid = Draft202012Validator(
        schema, format_checker=Draft202012Validator.FORMAT_CHECKER
    ).is_valid(document)
    result = verdict_of(orjson.dumps(document).decode())
    assert (result.verdict == Verdict.VALID) is expected_valid


CLINICAL = REGISTRY.get("clinical_extraction")
REVIEW = REGISTRY.get("code_review")


def test_clinical_extraction_good_and_bad_notes() -> None:
    good = {"patient_age": 67, "encounter_date": "2026-03-14",
            "diagnoses": [{"name": "Type 2 diabetes mellitus", "icd10": "E11.9", "status": "active"}],
            "medications": [{"name": "metformin", "dose": {"amount": 500, "unit": "mg"},
                             "frequency": "twice daily", "route": "oral"}],
            "allergies": ["penicillin"]}  # fmt: skip
    assert verdict_of(orjson.dumps(good).decode(), validator=CLINICAL).verdict == Verdict.VALID
    bad = {**good, "encounter_date": "14/03/2026",
           "medications": [{"name": "metformin", "dose": {"amount": 500, "unit": "tablets"},
                            "frequency": "twice daily"}]}  # fmt: skip
    result = verdict_of(orjson.dumps(bad).decode(), validator=CLINICAL)
    assert result.verdict == Verdict.INVALID
    assert {issue.path for issue in result.errors} == {
        "/encounter_date",
        "/medications/0/dose/unit",
    }


def test_code_review_good_and_bad_comment_lists() -> None:
    good = {"verdict": "request_changes", "comments": [
        {"file": "app/db.py", "line": 42, "severity": "major",
         "message": "This query runs once per row; batch it.", "suggestion": "use executemany"}]}  # fmt: skip
    assert verdict_of(orjson.dumps(good).decode(), validator=REVIEW).verdict == Verdict.VALID
    bad = {"verdict": "lgtm", "comments": [{"file": "app/db.py", "line": 0, "severity": "major"}]}
    result = verdict_of(orjson.dumps(bad).decode(), validator=REVIEW)
    assert result.verdict == Verdict.INVALID
    assert {issue.path for issue in result.errors} == {
        "/verdict",
        "/comments/0",
        "/comments/0/line",
    }


def test_output_that_was_not_utf8_gets_a_verdict() -> None:
    text = b'{"category": "\xff\xfe"}'.decode("utf-8", errors="replace")
    assert verdict_of(text).verdict == Verdict.INVALID
    assert verdict_of("\udcff").verdict == Verdict.UNPARSEABLE


REDOS_SCHEMA = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}


def test_a_catastrophic_request_pattern_is_matched_in_linear_time() -> None:
    """``^(a+)+$`` against 100,000 ``a`` and a ``b``: Python's ``re`` would backtrack for
    longer than the universe has existed; the linear engine answers ``invalid`` at once."""
    validator = SchemaRegistry().for_request_schema(REDOS_SCHEMA)
    output = orjson.dumps({"s": "a" * 100_000 + "b"}).decode()
    result = judge("request:redos", [Target(output, validator)], "stop")
    assert result.verdict == Verdict.INVALID
    assert result.errors[0].path == "/s"


def test_a_named_pattern_past_its_backtracking_limit_is_check_timeout(tmp_path: Path) -> None:
    (tmp_path / "echo.json").write_text(
        '{"type": "object", "properties": {"s": {"pattern": "(a*)*\\\\1b"}}}'
    )
    validator = SchemaRegistry.load(tmp_path).get("echo")
    output = orjson.dumps({"s": "a" * 50_000}).decode()
    result = judge("echo", [Target(output, validator)], "stop")
    assert result.verdict == Verdict.CHECK_TIMEOUT
    assert result.errors[0].path == "/s"
    assert "backtracking limit" in result.errors[0].message
