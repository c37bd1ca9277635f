"""Get a JSON document out of a model's output text (pure, bounded work)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

MAX_OUTPUT_BYTES = 4 * 1024 * 1024
_FENCE = re.compile(r"\A\s*```(?:json|JSON)?[ \t]*\n(.*?)\n?```\s*\Z", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Extracted:
    """Either ``document`` (when ``ok``) or a parse error with its character position."""

    ok: bool
    document: Any = None
    error: str | None = None
    position: int | None = None
    fenced: bool = False


def extract_json(text: str, *, allow_fence: bool = True) -> Extracted:
    """Parse ``text`` as JSON; with ``allow_fence``, also accept one fenced ```json block."""
    raw = text.encode("utf-8", errors="surrogatepass")
    if len(raw) > MAX_OUTPUT_BYTES:
        return Extracted(
            False, error=f"output of {len(raw)} bytes is over the {MAX_OUTPUT_BYTES}-byte limit"
        )
    if not text.strip():
        return Extracted(False, error="empty output", position=0)
    first = _parse(raw)
    if first.ok or not allow_fence:
        return first
    fenced = _FENCE.match(text)
    if fenced is None:
        return first
    inner = _parse(fenced.group(1).encode("utf-8", errors="surrogatepass"))
    if inner.ok:
        return Extracted(True, inner.document, fenced=True)
    return Extracted(False, error=inner.error, position=inner.position, fenced=True)


def _parse(raw: bytes) -> Extracted:
    try:
        return Extracted(True, orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        message = exc.msg if hasattr(exc, "msg") else str(exc)
        return Extracted(False, error=message, position=getattr(exc, "pos", None))
