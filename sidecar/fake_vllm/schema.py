"""A small JSON Schema instance generator: what the fake answers under ``response_format``.

Covers object/array/string/integer/number/boolean/null, enum/const, required, length and
range bounds, anyOf/oneOf/allOf and local ``$ref``s; enough for the schemas tests send.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 12
STRING_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
}


def sample_json(schema: Any) -> Any:
    """A value that satisfies ``schema`` (deterministic)."""
    return _sample(schema, schema if isinstance(schema, Mapping) else {}, 0)


def _sample(schema: Any, root: Mapping[str, Any], depth: int) -> Any:
    if not isinstance(schema, Mapping) or depth > MAX_DEPTH:
        return None
    if "$ref" in schema:
        return _sample(_resolve(str(schema["$ref"]), root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return _sample(_prefer_non_null(options), root, depth + 1)
    if isinstance(schema.get("allOf"), list):
        return _sample(_merge(schema), root, depth + 1)
    kind = _kind(schema)
    if kind == "object":
        return _sample_object(schema, root, depth)
    if kind == "array":
        return _sample_array(schema, root, depth)
    if kind == "string":
        return _sample_string(schema)
    if kind == "integer":
        return int(_sample_number(schema, integer=True))
    if kind == "number":
        return _sample_number(schema, integer=False)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return {}


def _kind(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), kind[0] if kind else None)
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def _resolve(reference: str, root: Mapping[str, Any]) -> Any:
    node: Any = root
    for part in reference.removeprefix("#").strip("/").split("/"):
        if not part:
            continue
        if not isinstance(node, Mapping):
            return None
        node = node.get(part.replace("~1", "/").replace("~0", "~"))
    return node


def _prefer_non_null(options: list[Any]) -> Any:
    return next(
        (
            option
            for option in options
            if not (isinstance(option, Mapping) and option.get("type") == "null")
        ),
        options[0],
    )


def _merge(schema: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {key: value for key, value in schema.items() if key != "allOf"}
    for part in schema["allOf"]:
        if not isinstance(part, Mapping):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, Mapping):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _sample_object(
    schema: Mapping[str, Any], root: Mapping[str, Any], depth: int
) -> dict[str, Any]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    value = {name: _sample(sub, root, depth + 1) for name, sub in properties.items()}
    for name in schema.get("required", []) or []:
        value.setdefault(str(name), _sample(schema.get("additionalProperties"), root, depth + 1))
    return value


def _sample_array(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> list[Any]:
    prefix = schema.get("prefixItems")
    head = [_sample(item, root, depth + 1) for item in prefix] if isinstance(prefix, list) else []
    minimum = int(schema.get("minItems", 0) or 0)
    maximum = schema.get("maxItems")
    count = max(minimum, 1, len(head))
    if isinstance(maximum, int):
        count = min(count, maximum)
    items = schema.get("items")
    tail = [_sample(items, root, depth + 1) for _ in range(max(count - len(head), 0))]
    return (head + tail)[:count]


def _sample_string(schema: Mapping[str, Any]) -> str:
    text = STRING_FORMATS.get(str(schema.get("format")), "text")
    minimum = int(schema.get("minLength", 0) or 0)
    maximum = schema.get("maxLength")
    if len(text) < minimum:
        text += "x" * (minimum - len(text))
    if isinstance(maximum, int):
        text = text[:maximum]
    return text


def _sample_number(schema: Mapping[str, Any], *, integer: bool) -> float:
    step = 1.0 if integer else 0.5
    low = _bound(schema, "minimum", "exclusiveMinimum", step)
    high = _bound(schema, "maximum", "exclusiveMaximum", -step)
    if integer:
        low = None if low is None else float(math.ceil(low))
        high = None if high is None else float(math.floor(high))
    value = 42.0 if integer else 4.2
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    return value


def _bound(schema: Mapping[str, Any], inclusive: str, exclusive: str, nudge: float) -> float | None:
    if isinstance(schema.get(inclusive), int | float):
        return float(schema[inclusive])
    if isinstance(schema.get(exclusive), int | float):
        return float(schema[exclusive]) + nudge
    return None
