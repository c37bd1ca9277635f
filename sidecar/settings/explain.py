"""msgspec's validation errors as the sidecar's messages: the dotted key first, then the fix.

``Expected `int` >= 1 - at `$.proxy.max_body_bytes``` becomes ``proxy.max_body_bytes: must be
greater than 0, got 0``: the constraint is read back from the field's declared type, the value
from what was loaded.
"""

from __future__ import annotations

import re
import typing
from typing import Any, Literal

import msgspec
import msgspec.inspect as mi

from sidecar.settings.sections import Settings

_AT = re.compile(r" - at `\$\.?(.*)`$")
_STEP = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[(\.\.\.)\]")  # [...]: a mapping's key


def explain(error: msgspec.ValidationError, raw: dict[str, Any]) -> str:
    """One line naming the key and the fix, for ``error`` raised converting ``raw``."""
    text = str(error)
    match = _AT.search(text)
    path = match.group(1) if match else ""
    reason = text[: match.start()] if match else text
    unknown = re.match(r"Object contains unknown field `([^`]+)`", reason)
    if unknown:
        key = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
        return f"{key}: unknown key (check the spelling; docs/configuration.md lists every key)"
    choices = literal_choices(path)
    if choices and reason.startswith("Invalid enum value"):
        return f"{path}: {reason}; use one of {', '.join(choices)}"
    must = _must(field_type(path), metadata_extra(path)) if _breaks_a_bound(reason) else None
    if must is None:
        return f"{path or 'config'}: {reason}"
    if "[...]" in path:  # msgspec does not say which mapping key
        return f"{path}: must {must}"
    return f"{path}: must {must}, got {_value_at(raw, path)!r}"


def _breaks_a_bound(reason: str) -> bool:
    """``Expected `int` >= 1``, ``... matching regex ...``: a constraint, not a wrong type."""
    return bool(re.match(r"Expected `\w+` (?:[<>]=?|matching regex) ", reason))


def _must(node: Any, extra: dict[str, Any]) -> str | None:
    """What the value must be, in words (``greater than 0``), from the declared constraint."""
    if "must" in extra:
        return str(extra["must"])
    bounds = [
        (getattr(node, name, None), words)
        for name, words in (("gt", "greater than"), ("ge", "at least"),
                            ("lt", "less than"), ("le", "at most"))
    ]  # fmt: skip
    parts = [f"be {words} {_number(bound)}" for bound, words in bounds if bound is not None]
    if parts == ["be at least 0"]:
        return "not be negative"
    return " and ".join(parts) or None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _steps(path: str) -> list[str | int]:
    """``judge.rules[0].sample_rate`` -> ``["judge", "rules", 0, "sample_rate"]``."""
    steps: list[str | int] = []
    for name, index, key in _STEP.findall(path):
        steps.append(name or (int(index) if index else key))
    return steps


def _walk(path: str) -> list[Any]:
    """The layers of the type declared at ``path``: its Metadata wrappers, down to the bare type."""
    node: Any = mi.type_info(Settings)
    for step in _steps(path):
        node = _bare(node, [])
        if isinstance(node, mi.StructType) and isinstance(step, str):
            fields = {field.name: field.type for field in node.fields}
            if step not in fields:
                return []
            node = fields[step]
        elif isinstance(node, mi.ListType):
            node = node.item_type
        elif isinstance(node, mi.DictType):
            node = node.value_type
        else:
            return []
    nodes: list[Any] = []
    _bare(node, nodes)
    return nodes


def _bare(node: Any, seen: list[Any]) -> Any:
    """``node`` without its Metadata wrappers and its ``| None``; every layer goes to ``seen``."""
    while True:
        seen.append(node)
        if isinstance(node, mi.Metadata):
            node = node.type
        elif isinstance(node, mi.UnionType):
            others = [member for member in node.types if not isinstance(member, mi.NoneType)]
            if len(others) != 1:
                return node
            node = others[0]
        else:
            return node


def field_type(path: str) -> Any:
    """The declared type at a dotted path, bare of metadata and ``None`` (``None`` if unknown)."""
    nodes = _walk(path)
    return nodes[-1] if nodes else None


def metadata_extra(path: str) -> dict[str, Any]:
    """The ``Meta(extra=...)`` of the field at ``path`` (its alias's first, the field's over)."""
    merged: dict[str, Any] = {}
    for node in _walk(path):
        if isinstance(node, mi.Metadata) and node.extra:
            merged.update(node.extra)
    return merged


def literal_choices(path: str) -> list[str]:
    """The allowed values of a ``Literal`` setting at ``path``, in declared order (else empty)."""
    steps = _steps(path)
    last = max((i for i, step in enumerate(steps) if isinstance(step, str)), default=None)
    if last is None:
        return []
    owner = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in steps[:last])
    layers = _walk(owner.lstrip("."))
    if not layers or not isinstance(layers[-1], mi.StructType):
        return []
    return declared_literal(layers[-1].cls, str(steps[last]))


def declared_literal(struct: type, name: str) -> list[str]:
    """The values of the ``Literal`` in field ``name``'s annotation, in the order written (msgspec's
    own type info sorts them); empty when it has none."""
    annotation: Any = typing.get_type_hints(struct, include_extras=True).get(name)
    while annotation is not None and typing.get_origin(annotation) is not Literal:
        arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = arguments[0] if arguments else None
    return [str(value) for value in typing.get_args(annotation)] if annotation else []


def _value_at(raw: Any, path: str) -> Any:
    for step in _steps(path):
        try:
            raw = raw[step]
        except (KeyError, IndexError, TypeError):
            return None
    return raw
