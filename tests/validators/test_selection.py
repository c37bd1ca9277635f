"""Which schema applies: request schema, structured outputs, header, rules, tool calls (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from sidecar.records import ScopeMatch, Verdict
from sidecar.validators.registry import SchemaRegistry
from sidecar.validators.selection import Exchanged, SchemaRule, check

REGISTRY = SchemaRegistry.load(Path(__file__).resolve().parents[2] / "schemas")
TRIAGE_OK = orjson.dumps({"category": "bug", "priority": 1, "sentiment": "angry",
                          "summary": "App crashes", "needs_human": False}).decode()  # fmt: skip


def chat(
    content: str | None = None, tool_calls: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }


def exchanged(request: dict[str, Any], response: Any, **kwargs: Any) -> Exchanged:
    base: dict[str, Any] = {"path": "/v1/chat/completions", "model": "support", "adapter": "support",
                            "request": request, "response": response, "finish_reason": "stop"}  # fmt: skip
    base.update(kwargs)
    return Exchanged(**base)


def test_no_schema_means_no_verdict() -> None:
    assert check(exchanged({}, chat("hello")), REGISTRY, []) is None


def test_request_json_schema_wins_over_header_and_rules() -> None:
    request = {"response_format": {"type": "json_schema", "json_schema": {
        "name": "person", "schema": {"type": "object", "required": ["name"]}}}}  # fmt: skip
    result = check(exchanged(request, chat('{"age": 3}'), schema_header="support_triage"), REGISTRY,
                   [SchemaRule("code_review")])  # fmt: skip
    assert result is not None
    assert (result.schema_name, result.verdict) == ("request:person", Verdict.INVALID)


def test_json_object_means_must_be_an_object() -> None:
    request = {"response_format": {"type": "json_object"}}
    assert check(exchanged(request, chat("[1]")), REGISTRY, []).verdict == Verdict.INVALID  # type: ignore[union-attr]
    assert check(exchanged(request, chat("{}")), REGISTRY, []).verdict == Verdict.VALID  # type: ignore[union-attr]


def test_structured_outputs_and_legacy_guided_json() -> None:
    schema = {"type": "object", "required": ["a"]}
    for request in ({"structured_outputs": {"json": schema}}, {"guided_json": schema}):
        result = check(exchanged(request, chat('{"a": 1}')), REGISTRY, [])
        assert result is not None
        assert result.verdict == Verdict.VALID


def test_invalid_request_schema_is_a_schema_error() -> None:
    request = {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": 5}},
        }
    }
    assert check(exchanged(request, chat("{}")), REGISTRY, []).verdict == Verdict.SCHEMA_ERROR  # type: ignore[union-attr]


def test_header_names_a_registered_schema() -> None:
    result = check(exchanged({}, chat(TRIAGE_OK), schema_header="support_triage"), REGISTRY, [])
    assert result is not None
    assert (result.schema_name, result.verdict) == (
        "support_triage",
        Verdict.VALID,
    )
    unknown = check(exchanged({}, chat(TRIAGE_OK), schema_header="nope"), REGISTRY, [])
    assert unknown is not None
    assert unknown.verdict == Verdict.SCHEMA_ERROR
    assert "known: clinical_extraction" in unknown.errors[0].message


def test_first_matching_rule_applies() -> None:
    rules = [
        SchemaRule("code_review", ScopeMatch(adapter="legal")),
        SchemaRule("support_triage", ScopeMatch(model="support")),
    ]
    result = check(exchanged({}, chat(TRIAGE_OK)), REGISTRY, rules)
    assert result is not None
    assert result.schema_name == "support_triage"
    assert (
        check(exchanged({}, chat(TRIAGE_OK), model="tiny", adapter=None), REGISTRY, rules) is None
    )


def test_tool_call_arguments_are_checked_against_the_declared_parameters() -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "integer"}}}}}]  # fmt: skip

    def call(name: str, arguments: str) -> dict[str, Any]:
        return {"id": "c", "type": "function", "function": {"name": name, "arguments": arguments}}

    good = check(
        exchanged({"tools": tools}, chat(tool_calls=[call("lookup", '{"order_id": 7}')])),
        REGISTRY,
        [],
    )
    assert good is not None
    assert good.verdict == Verdict.VALID
    wrong = check(
        exchanged({"tools": tools}, chat(tool_calls=[call("lookup", '{"order_id": "7"}')])),
        REGISTRY,
        [],
    )
    assert wrong is not None
    assert wrong.verdict == Verdict.INVALID
    assert wrong.errors[0].path == "tool_calls[0] lookup:/order_id"
    broken = check(
        exchanged({"tools": tools}, chat(tool_calls=[call("lookup", '{"order')])), REGISTRY, []
    )
    assert broken is not None
    assert broken.verdict == Verdict.UNPARSEABLE
    unknown = check(
        exchanged({"tools": tools}, chat(tool_calls=[call("delete_all", "{}")])), REGISTRY, []
    )
    assert unknown is not None
    assert unknown.verdict == Verdict.INVALID
    assert "undeclared function 'delete_all'" in unknown.errors[0].message


def test_completions_text_is_checked_too() -> None:
    response = {"object": "text_completion", "choices": [{"index": 0, "text": TRIAGE_OK}]}
    result = check(
        exchanged({}, response, path="/v1/completions", schema_header="support_triage"),
        REGISTRY,
        [],
    )
    assert result is not None
    assert result.verdict == Verdict.VALID
