"""msgspec's validation errors as the sidecar's messages: the dotted key first, then the fix.

``Expected `int` >= 1 - at `$.proxy.max_body_bytes``` becomes ``proxy.max_body_bytes: must be
greater than 0, got 0``: the constraint is read back from the field's declared type, the value
from what was loaded.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import msgspec.inspect as mi

from sidecar.settings.sections import Settings
from sidecar.settings.values import declared_literal, unwrap

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
    choices = _literal_choices(path)
    if choices and reason.startswith("Invalid enum value"):
        return f"{path}: {reason}; use one of {', '.join(choices)}"
    must = _must(*_declared(path)) if _breaks_a_bound(reason) else None
    if must is None:
        return f"{path or 'config'}: {reason}"
    if "[...]" in path:  # msgspec does not say which mapping key
        return f"{path}: must {must}"
    return f"{path}: must {must}, got {_value_at(raw, path)!r}"


def _breaks_a_bound(reason: str) -> bool:
    """``Expected `int` >= 1``, ``... matching regex ...``: a constraint, not a wrong type."""
    return bool(re.match(r"Expected `\w+` (?:[<>]=?|matching regex) ", reason))


def _must(node: Any, meta: dict[str, Any]) -> str | None:
    """What the value must be, in words (``be greater than 0``), from the declared constraint."""
    if "must" in meta:
        return str(meta["must"])
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


def _declared(path: str) -> tuple[Any, dict[str, Any]]:
    """The bare type declared at ``path`` and its metadata; ``(None, {})`` for an unknown path."""
    node: Any = mi.type_info(Settings)
    for step in _steps(path):
        node = unwrap(node)[0]
        if isinstance(node, mi.StructType) and isinstance(step, str):
            fields = {field.name: field.type for field in node.fields}
            if step not in fields:
                return None, {}
            node = fields[step]
        elif isinstance(node, mi.ListType):
            node = node.item_type
        elif isinstance(node, mi.DictType):
            node = node.value_type
        else:
            return None, {}
    return unwrap(node)


def _literal_choices(path: str) -> list[str]:
    """The allowed values of a ``Literal`` setting at ``path``, in declared order (else empty)."""
    steps = _steps(path)
    last = max((i for i, step in enumerate(steps) if isinstance(step, str)), default=None)
    if last is None:
        return []
    owner = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in steps[:last])
    struct = _declared(owner.lstrip("."))[0]
    if not isinstance(struct, mi.StructType):
        return []
    return declared_literal(struct.cls, str(steps[last]))


def _value_at(raw: Any, path: str) -> Any:
    for step in _steps(path):
        try:
            raw = raw[step]
        except (KeyError, IndexError, TypeError):
            return None
    return raw
