"""Server-sent events: hide an injected usage chunk (request path) and reassemble streams (writer).

Both are pure: :class:`UsageChunkFilter` is a byte-level state machine fed
with whatever the upstream sends; :func:`reassemble` turns a captured stream
into the message a non-streaming call would have returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

EVENT_END = b"\n\n"
DONE_EVENT = b"data: [DONE]\n\n"
_FINISH_MARK = b'"finish_reason":"'
_USAGE_ONLY_MARK = b'"choices":[]'
_FINGERPRINT_KEY = b'"system_fingerprint":'


class UsageChunkFilter:
    """Drop the ``choices: []`` usage chunk that the sidecar asked vLLM for.

    vLLM moves ``system_fingerprint`` from the finish chunk to the usage chunk
    when ``include_usage`` is on, so finish chunks are held until the next event
    and, when that is the usage chunk, get the fingerprint back. The client then
    receives the bytes vLLM would have sent it without ``include_usage``.
    """

    __slots__ = ("_held", "_partial")

    def __init__(self) -> None:
        self._partial = b""
        self._held: list[bytes] = []

    def feed(self, data: bytes) -> bytes:
        """Bytes to forward now for ``data`` just received."""
        if not self._partial and not self._held and data.endswith(EVENT_END):
            if _FINISH_MARK not in data and _USAGE_ONLY_MARK not in data:
                return data  # the common case: ordinary token chunks
        buffered = self._partial + data
        cut = buffered.rfind(EVENT_END)
        if cut < 0:
            self._partial = buffered
            return b""
        self._partial = buffered[cut + 2 :]
        out: list[bytes] = []
        for event in buffered[: cut + 2].split(EVENT_END)[:-1]:
            self._on_event(event + EVENT_END, out)
        return b"".join(out)

    def flush(self) -> bytes:
        """Everything still held, at the end of the stream."""
        rest = b"".join(self._held) + self._partial
        self._held.clear()
        self._partial = b""
        return rest

    def _on_event(self, event: bytes, out: list[bytes]) -> None:
        if _USAGE_ONLY_MARK in event and event.startswith(b"data: {"):
            fingerprint = _fingerprint_member(event)
            held = self._held
            self._held = []
            out.extend(_with_member(chunk, fingerprint) if fingerprint else chunk for chunk in held)
            return
        if self._held and _FINISH_MARK not in event:
            out.extend(self._held)
            self._held.clear()
        if _FINISH_MARK in event and event.startswith(b"data: {"):
            self._held.append(event)
        else:
            out.append(event)


def _fingerprint_member(event: bytes) -> bytes | None:
    """The raw ``"system_fingerprint":"..."`` member of a chunk, if present and not null."""
    try:
        chunk = orjson.loads(event[len(b"data: ") :])
    except orjson.JSONDecodeError:
        return None
    fingerprint = chunk.get("system_fingerprint") if isinstance(chunk, dict) else None
    if fingerprint is None:
        return None
    return _FINGERPRINT_KEY + orjson.dumps(fingerprint)


def _with_member(event: bytes, member: bytes) -> bytes:
    """Append a JSON member to the object of one ``data: {...}\\n\\n`` event."""
    body = event.rstrip(b"\n")
    if not body.endswith(b"}") or _FINGERPRINT_KEY in body:
        return event
    return body[:-1] + b"," + member + b"}" + EVENT_END


def split_done(data: bytes) -> tuple[bytes, bytes]:
    """Split a trailing ``data: [DONE]`` event off ``data`` (so it can be sent after logging)."""
    if data.endswith(DONE_EVENT):
        return data[: -len(DONE_EVENT)], DONE_EVENT
    return data, b""


@dataclass
class _Choice:
    index: int
    role: str | None = None
    text: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None
    stop_reason: Any = None


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """A captured stream, reassembled."""

    response: dict[str, Any] | None  # shaped like the non-streaming response body
    usage: dict[str, Any] | None
    finish_reason: str | None
    first_token_offset: int | None  # byte offset just past the first event carrying output
    error: dict[str, Any] | None
    done: bool
    malformed_events: int


def reassemble(raw: bytes) -> StreamSummary:
    """Rebuild the message, usage and finish reason from an OpenAI/vLLM SSE stream."""
    choices: dict[int, _Choice] = {}
    head: dict[str, Any] = {}
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    first_token_offset: int | None = None
    done = False
    malformed = 0
    offset = 0
    for event in raw.split(EVENT_END):
        offset += len(event) + len(EVENT_END)
        data = _event_data(event)
        if data is None:
            continue
        if data == b"[DONE]":
            done = True
            continue
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            malformed += 1
            continue
        if not isinstance(chunk, dict):
            malformed += 1
            continue
        if "error" in chunk or chunk.get("object") == "error":
            error = chunk.get("error", chunk) if isinstance(chunk.get("error"), dict) else chunk
            continue
        for key in ("id", "object", "created", "model", "system_fingerprint"):
            if chunk.get(key) is not None and key not in head:
                head[key] = chunk[key]
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
        for raw_choice in chunk.get("choices") or ():
            if _merge_choice(choices, raw_choice) and first_token_offset is None:
                first_token_offset = min(offset, len(raw))
    response = _response_from(head, choices, usage) if head or choices else None
    finish = next((c.finish_reason for c in sorted_choices(choices) if c.finish_reason), None)
    return StreamSummary(response, usage, finish, first_token_offset, error, done, malformed)


def sorted_choices(choices: dict[int, _Choice]) -> list[_Choice]:
    return [choices[index] for index in sorted(choices)]


def _event_data(event: bytes) -> bytes | None:
    """The payload of one SSE event's ``data:`` lines (None for comments and empty events)."""
    lines = [
        line[5:].lstrip(b" ")
        for line in event.replace(b"\r\n", b"\n").split(b"\n")
        if line.startswith(b"data:")
    ]
    return b"\n".join(lines) if lines else None


def _merge_choice(choices: dict[int, _Choice], raw: Any) -> bool:
    """Fold one chunk choice into the accumulated ones; True when it carried output."""
    if not isinstance(raw, dict):
        return False
    index = raw.get("index", 0) if isinstance(raw.get("index", 0), int) else 0
    choice = choices.setdefault(index, _Choice(index))
    produced = False
    delta = raw.get("delta")
    if isinstance(delta, dict):
        if isinstance(delta.get("role"), str):
            choice.role = delta["role"]
        if isinstance(delta.get("content"), str) and delta["content"]:
            choice.text.append(delta["content"])
            produced = True
        for call in delta.get("tool_calls") or ():
            produced = _merge_tool_call(choice, call) or produced
    elif isinstance(raw.get("text"), str) and raw["text"]:
        choice.text.append(raw["text"])
        produced = True
    if raw.get("finish_reason") is not None:
        choice.finish_reason = raw["finish_reason"]
        choice.stop_reason = raw.get("stop_reason")
    return produced


def _merge_tool_call(choice: _Choice, call: Any) -> bool:
    if not isinstance(call, dict):
        return False
    position = call.get("index", len(choice.tool_calls))
    slot = choice.tool_calls.setdefault(
        position, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
    )
    if call.get("id"):
        slot["id"] = call["id"]
    if call.get("type"):
        slot["type"] = call["type"]
    function = call.get("function") or {}
    if isinstance(function, dict):
        slot["function"]["name"] += function.get("name") or ""
        slot["function"]["arguments"] += function.get("arguments") or ""
    return True


def _response_from(
    head: dict[str, Any], choices: dict[int, _Choice], usage: dict[str, Any] | None
) -> dict[str, Any]:
    chat = head.get("object") == "chat.completion.chunk"
    rebuilt: list[dict[str, Any]] = []
    for choice in sorted_choices(choices):
        text = "".join(choice.text)
        if chat:
            message: dict[str, Any] = {"role": choice.role or "assistant", "content": text or None}
            if choice.tool_calls:
                message["tool_calls"] = [choice.tool_calls[i] for i in sorted(choice.tool_calls)]
            rebuilt.append(
                {
                    "index": choice.index,
                    "message": message,
                    "finish_reason": choice.finish_reason,
                    "stop_reason": choice.stop_reason,
                }
            )
        else:
            rebuilt.append(
                {
                    "index": choice.index,
                    "text": text,
                    "finish_reason": choice.finish_reason,
                    "stop_reason": choice.stop_reason,
                }
            )
    return {
        "id": head.get("id"),
        "object": "chat.completion" if chat else head.get("object", "text_completion"),
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": rebuilt,
        "system_fingerprint": head.get("system_fingerprint"),
        "usage": usage,
    }
