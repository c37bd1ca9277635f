"""What a JSON response captured with its middle dropped still tells (pure; the row builder reads
it like a whole body)."""

from __future__ import annotations

import re
from typing import Any

import orjson

_HEAD_STRING = re.compile(rb'"(id|object|model)":"((?:[^"\\]|\\.)*)"')
_HEAD_CREATED = re.compile(rb'"created":(\d+)')
_FINISH_REASON = re.compile(rb'"finish_reason":"((?:[^"\\]|\\.)*)"')
_USAGE_KEY = b'"usage":{'


def cut_json_summary(body: bytes, gap_at: int) -> dict[str, Any]:
    """What a JSON response captured with its middle dropped still tells: the head's ``id``,
    ``object``, ``created`` and ``model``, the tail's ``usage`` and last ``finish_reason``.

    Shaped like the response (``choices`` holds only the finish reason), so the row builder reads
    it like a whole body. Fields not found are left out.
    """
    head, tail = body[: min(gap_at, 4096)], body[gap_at:]
    summary: dict[str, Any] = {}
    for match in _HEAD_STRING.finditer(head):
        key = match.group(1).decode()
        if key not in summary:
            summary[key] = _json_string(match.group(2))
    created = _HEAD_CREATED.search(head)
    if created is not None:
        summary["created"] = int(created.group(1))
    finish = None
    for finish in _FINISH_REASON.finditer(tail):  # noqa: B007 - the last one
        pass
    if finish is not None:
        summary["choices"] = [{"index": 0, "finish_reason": _json_string(finish.group(1))}]
    start = tail.rfind(_USAGE_KEY)
    if start >= 0:
        usage = _json_object_at(tail, start + len(_USAGE_KEY) - 1)
        if usage is not None:
            summary["usage"] = usage
    return summary


def _json_string(raw: bytes) -> str | None:
    try:
        value = orjson.loads(b'"' + raw + b'"')
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, str) else None


def _json_object_at(data: bytes, start: int) -> dict[str, Any] | None:
    """The JSON object that starts at ``data[start]`` (``{``), when it ends within ``data``."""
    depth = 0
    in_string = escaped = False
    for index in range(start, len(data)):
        byte = data[index]
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte == 0x7B:  # {
            depth += 1
        elif byte == 0x7D:  # }
            depth -= 1
            if depth == 0:
                try:
                    value = orjson.loads(data[start : index + 1])
                except orjson.JSONDecodeError:
                    return None
                return value if isinstance(value, dict) else None
    return None
