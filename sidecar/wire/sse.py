"""Server-sent events: hide an injected usage chunk (request path) and reassemble streams (writer).

Both are pure and take any of the three line endings the SSE format allows (LF, CRLF, CR; a
stream may mix them). :class:`UsageChunkFilter` is a byte-level state machine fed with whatever
the upstream sends; it forwards every byte unchanged and in order, holding back at most one
small event. :func:`reassemble` turns a captured stream into the message a non-streaming call
would have returned. Both run in time linear in the stream's size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

EVENT_END = b"\n\n"
DONE_EVENT = b"data: [DONE]\n\n"
DONE_EVENTS = (DONE_EVENT, b"data: [DONE]\r\n\r\n", b"data: [DONE]\r\r")
# A chunk that ends like this ends with a complete event (a blank line after a line end).
_ENDS_WITH_EVENT_END = (b"\n\n", b"\r\r", b"\n\r\n")
# A line end followed by an empty line. A CR directly followed by LF is one line end (CRLF),
# never a line end plus an empty line.
_EVENT_END = re.compile(rb"\r\n(?:\r\n|\n|\r)|\n(?:\r\n|\n|\r)|\r(?:\r\n|\r)")
_EVENT_END_MAX = 4  # bytes of the longest match above
MAX_HELD_EVENT_BYTES = 64 * 1024  # an event still open past this is passed on, never held
_FINISH_MARK = b'"finish_reason":"'
_USAGE_ONLY_MARK = b'"choices":[]'
_FINGERPRINT_KEY = b'"system_fingerprint":'


class UsageChunkFilter:
    """Drop the ``choices: []`` usage chunk that the sidecar asked vLLM for.

    vLLM moves ``system_fingerprint`` from the finish chunk to the usage chunk
    when ``include_usage`` is on, so finish chunks are held until the next event
    and, when that is the usage chunk, get the fingerprint back. The client then
    receives the bytes vLLM would have sent it without ``include_usage``.

    Only events that could be one of those two are held. An event that is still open after
    ``MAX_HELD_EVENT_BYTES`` (a stream without blank-line event ends, say) is passed on as it
    arrives, so nothing waits for the end of the stream and memory stays bounded.
    """

    __slots__ = ("_held", "_partial", "_passed_tail", "_passing", "_scan_from")

    def __init__(self) -> None:
        self._partial = bytearray()
        self._scan_from = 0  # the partial holds no event end before this offset
        self._held: list[bytes] = []
        self._passing = False  # forwarding an oversized event until its end
        self._passed_tail = b""  # its last bytes forwarded, to see an end that spans chunks

    def feed(self, data: bytes) -> bytes:
        """Bytes to forward now for ``data`` just received."""
        if not self._partial and not self._held and not self._passing:
            if data.endswith(_ENDS_WITH_EVENT_END):
                if _FINISH_MARK not in data and _USAGE_ONLY_MARK not in data:
                    return data  # the common case: ordinary token chunks
        out: list[bytes] = []
        if self._passing:
            data = self._pass_open_event(data, out)
        self._partial += data
        self._take_events(out)
        if len(self._partial) > MAX_HELD_EVENT_BYTES:
            out.extend(self._held)
            self._held.clear()
            out.append(bytes(self._partial))
            self._passed_tail = bytes(self._partial[-(_EVENT_END_MAX - 1) :])
            self._partial.clear()
            self._scan_from = 0
            self._passing = True
        return b"".join(out)

    def flush(self) -> bytes:
        """Everything still held, at the end of the stream."""
        rest = b"".join(self._held) + bytes(self._partial)
        self._held.clear()
        self._partial.clear()
        self._scan_from = 0
        return rest

    def _pass_open_event(self, data: bytes, out: list[bytes]) -> bytes:
        """Forward the rest of an oversized event; return what follows its end (or nothing)."""
        context = self._passed_tail
        match = _EVENT_END.search(context + data)
        if match is None:
            out.append(data)
            self._passed_tail = (context + data)[-(_EVENT_END_MAX - 1) :]
            return b""
        end = match.end() - len(context)
        out.append(data[:end])
        self._passed_tail = b""
        self._passing = False
        return data[end:]

    def _take_events(self, out: list[bytes]) -> None:
        partial = self._partial
        cut = 0
        position = max(self._scan_from - (_EVENT_END_MAX - 1), 0)
        while (match := _EVENT_END.search(partial, position)) is not None:
            self._on_event(bytes(partial[cut : match.end()]), out)
            cut = position = match.end()
        if cut:
            del partial[:cut]
        self._scan_from = len(partial)

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
    """Append a JSON member to the object of one ``data: {...}`` event (its line ends kept)."""
    body = event.rstrip(b"\r\n")
    if not body.endswith(b"}") or _FINGERPRINT_KEY in body:
        return event
    return body[:-1] + b"," + member + b"}" + event[len(body) :]


def whole_events_around(raw: bytes, gap_at: int) -> bytes:
    """A stream captured with its middle dropped (at ``gap_at``), cut back to whole events: the
    complete events before the gap, then those after the first event end behind it."""
    head, tail = raw[:gap_at], raw[gap_at:]
    last_end = 0
    for match in _EVENT_END.finditer(head):
        last_end = match.end()
    first = _EVENT_END.search(tail)
    return head[:last_end] + (tail[first.end() :] if first is not None else b"")


def split_done(data: bytes) -> tuple[bytes, bytes]:
    """Split a trailing ``data: [DONE]`` event off ``data`` (so it can be sent after logging)."""
    for done in DONE_EVENTS:
        if data.endswith(done):
            return data[: -len(done)], done
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
    for end, payload in iter_event_data(raw):
        if payload == b"[DONE]":
            done = True
            continue
        try:
            chunk = orjson.loads(payload)
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
                first_token_offset = end
    response = _response_from(head, choices, usage) if head or choices else None
    finish = next((c.finish_reason for c in sorted_choices(choices) if c.finish_reason), None)
    return StreamSummary(response, usage, finish, first_token_offset, error, done, malformed)


def sorted_choices(choices: dict[int, _Choice]) -> list[_Choice]:
    return [choices[index] for index in sorted(choices)]


def iter_event_data(raw: bytes) -> Iterator[tuple[int, bytes]]:
    """``(offset just past the event, payload)`` for each event's ``data:`` lines.

    Lines end in LF, CRLF or CR; an empty line ends an event, and so does the end of the
    stream (an upstream that never sends the blank line still gets its last event read). The
    ``data:`` lines of one event are joined with LF, as the SSE format says; when that is not
    JSON but each line is (a stream that put no blank lines between its events), each line is
    its own payload. Comments and other fields are skipped.
    """
    data: list[bytes] = []
    offset = 0
    for line in raw.splitlines(keepends=True):
        offset += len(line)
        content = line.rstrip(b"\r\n")
        if not content:
            if data:
                yield from _payloads(data, offset)
                data = []
        elif content.startswith(b"data:"):
            value = content[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        yield from _payloads(data, offset)


def _payloads(lines: list[bytes], end: int) -> Iterator[tuple[int, bytes]]:
    if len(lines) == 1:
        yield end, lines[0]
        return
    joined = b"\n".join(lines)
    try:
        orjson.loads(joined)
    except orjson.JSONDecodeError:
        for line in lines:
            yield end, line
        return
    yield end, joined


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
