"""Which schema applies to an exchange, and the verdict for the row (pure).

Order: the request's own ``response_format`` (``json_schema`` or ``json_object``),
vLLM's ``structured_outputs.json`` / legacy ``guided_json``, the ``X-Sidecar-Schema``
header, then the first configured rule matching model / adapter / path. No
schema means no verdict (not "valid"). When the request declares ``tools``,
each returned tool call's arguments are checked against that function's
``parameters``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sidecar.records import SchemaIssue, SchemaVerdict, ScopeMatch, Verdict
from sidecar.validators.registry import SchemaRegistry
from sidecar.validators.verdict import Target, judge

JSON_OBJECT_SCHEMA = {"type": "object"}


@dataclass(frozen=True, slots=True)
class SchemaRule:
    """The schema for the traffic in ``scope`` (model / adapter / path)."""

    schema: str
    scope: ScopeMatch = field(default_factory=ScopeMatch)  # matches everything
    allow_fenced: bool | None = None  # None: the global default


@dataclass(frozen=True, slots=True)
class Exchanged:
    """What the check needs from one logged exchange."""

    path: str
    model: str | None
    adapter: str | None
    request: Any
    response: Any
    finish_reason: str | None
    schema_header: str | None = None


def _request_schema(request: dict[str, Any]) -> tuple[str, Any] | None:
    response_format = request.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_schema" and isinstance(response_format.get("json_schema"), dict):
            spec = response_format["json_schema"]
            return f"request:{spec.get('name') or 'json_schema'}", spec.get("schema", {})
        if kind == "json_object":
            return "request:json_object", JSON_OBJECT_SCHEMA
    structured = request.get("structured_outputs")
    if isinstance(structured, dict):
        if "json" in structured:
            return "request:structured_outputs", structured["json"]
        if structured.get("json_object"):
            return "request:json_object", JSON_OBJECT_SCHEMA
    if "guided_json" in request:
        return "request:guided_json", request["guided_json"]
    return None


def _outputs(response: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """The first choice's text and its tool calls."""
    if not isinstance(response, dict):
        return None, []
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None, []
    choice = choices[0]
    message = choice.get("message")
    if isinstance(message, dict):
        content = message.get("content")
        calls = message.get("tool_calls") or []
        return (content if isinstance(content, str) else None), [
            c for c in calls if isinstance(c, dict)
        ]
    text = choice.get("text")
    return (text if isinstance(text, str) else None), []


def _rule_for(exchanged: Exchanged, rules: Sequence[SchemaRule]) -> SchemaRule | None:
    """The first rule whose scope takes the exchange's model / adapter / path."""
    model, adapter, path = exchanged.model, exchanged.adapter, exchanged.path
    return next((rule for rule in rules if rule.scope.matches(model, adapter, path=path)), None)


def applies(exchanged: Exchanged, rules: Sequence[SchemaRule]) -> bool:
    """Cheap pre-check: could :func:`check` find a schema for this exchange?"""
    if exchanged.response is None or not exchanged.path.endswith("completions"):
        return False
    if exchanged.schema_header is not None:
        return True
    request = exchanged.request if isinstance(exchanged.request, dict) else {}
    if _request_schema(request) is not None or request.get("tools"):
        return True
    return _rule_for(exchanged, rules) is not None


def schema_name(exchanged: Exchanged, rules: Sequence[SchemaRule]) -> str | None:
    """The name :func:`check` would record, without checking anything (cheap)."""
    request = exchanged.request if isinstance(exchanged.request, dict) else {}
    tools = request.get("tools")
    if isinstance(tools, list) and tools and _outputs(exchanged.response)[1]:
        return "request:tools"
    chosen = _request_schema(request)
    if chosen is not None:
        return chosen[0]
    rule = _rule_for(exchanged, rules)
    return exchanged.schema_header or (rule.schema if rule else None)


def check(
    exchanged: Exchanged,
    registry: SchemaRegistry,
    rules: Sequence[SchemaRule],
    *,
    allow_fenced: bool = True,
) -> SchemaVerdict | None:
    """The verdict for the row, or None when no schema applies."""
    request = exchanged.request if isinstance(exchanged.request, dict) else {}
    if exchanged.response is None or not exchanged.path.endswith("completions"):
        return None
    text, calls = _outputs(exchanged.response)
    tools = request.get("tools")
    if isinstance(tools, list) and tools and calls:
        return _check_tool_calls(tools, calls, registry, exchanged.finish_reason)
    chosen = _request_schema(request)
    if chosen is not None:
        name, schema = chosen
        compiled = registry.for_request_schema(schema)
        return judge(
            name, [Target(text, compiled, allow_fence=allow_fenced)], exchanged.finish_reason
        )
    rule = _rule_for(exchanged, rules)
    named = exchanged.schema_header or (rule.schema if rule else None)
    if named is None:
        return None
    if rule is not None and rule.schema == named and rule.allow_fenced is not None:
        allow_fenced = rule.allow_fenced
    validator = registry.get(named)
    if validator is None:
        known = ", ".join(registry.names()) or "none"
        issue = SchemaIssue("/", f"unknown schema {named!r}; known: {known}")
        return SchemaVerdict(named, Verdict.SCHEMA_ERROR, 1, (issue,))
    return judge(
        named, [Target(text, validator, allow_fence=allow_fenced)], exchanged.finish_reason
    )


def _check_tool_calls(
    tools: list[Any],
    calls: list[dict[str, Any]],
    registry: SchemaRegistry,
    finish_reason: str | None,
) -> SchemaVerdict:
    declared = {
        tool["function"]["name"]: tool["function"].get("parameters", {})
        for tool in tools
        if isinstance(tool, dict)
        and isinstance(tool.get("function"), dict)
        and isinstance(tool["function"].get("name"), str)
    }
    targets: list[Target] = []
    unknown: list[SchemaIssue] = []
    for index, call in enumerate(calls):
        function: dict[str, Any] = (
            call["function"] if isinstance(call.get("function"), dict) else {}
        )
        name = function.get("name")
        label = f"tool_calls[{index}] {name}"
        if name not in declared:
            unknown.append(
                SchemaIssue(f"{label}:/", f"the model called an undeclared function {name!r}")
            )
            continue
        arguments = function.get("arguments")
        targets.append(Target(arguments if isinstance(arguments, str) else None,
                              registry.for_request_schema(declared[name]), label))  # fmt: skip
    verdict = judge("request:tools", targets, finish_reason)
    if not unknown:
        return verdict
    kind = verdict.verdict if verdict.verdict != Verdict.VALID else Verdict.INVALID
    return SchemaVerdict("request:tools", kind, verdict.error_count + len(unknown),
                         (*unknown, *verdict.errors)[:5])  # fmt: skip
