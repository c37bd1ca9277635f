"""What the fake generates: per-request knobs from ``x-fake-*`` headers and the choice plans.

Knobs ride in headers so that a test talking through a proxy can drive them while the body
stays a real vLLM body.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus

import orjson

from sidecar.fake_vllm.bodies import ApiError, ChoiceOutput, ToolCallOutput
from sidecar.fake_vllm.config import FakeVllmConfig
from sidecar.fake_vllm.requests import GenerationRequest
from sidecar.fake_vllm.schema import sample_json
from sidecar.fake_vllm.text import cut_at_stop, gibberish, split_tokens


@dataclass(frozen=True, slots=True)
class ToolCallSpec:
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Knobs:
    """Fault and output settings for one request: the config's, overridden by headers."""

    latency_s: float = 0.0
    chunk_delay_s: float = 0.0
    reset_after_chunks: int | None = None
    status: int | None = None
    output: str | None = None
    malformed_sse: bool = False
    tool_call: ToolCallSpec | None = None


def _utf8(value: str) -> str:
    """Header values arrive latin-1 decoded; text knobs are UTF-8 on the wire."""
    return value.encode("latin-1").decode("utf-8", "replace")


def _output_knob(value: str) -> str:
    """``x-fake-output``: the text itself, or ``json:"..."`` (a JSON string, for newlines)."""
    text = _utf8(value)
    if text.startswith("json:"):
        try:
            decoded = orjson.loads(text[5:])
        except orjson.JSONDecodeError:
            return text
        if isinstance(decoded, str):
            return decoded
    return text


def _knob_error(name: str, value: str) -> ApiError:
    return ApiError(400, f"invalid {name} header: {value!r}", "BadRequestError")


def read_knobs(headers: Mapping[str, str], config: FakeVllmConfig) -> Knobs | ApiError:
    latency, delay, reset = config.latency_s, config.chunk_delay_s, config.reset_after_chunks
    if not any(name.startswith("x-fake-") for name in headers):
        return Knobs(latency, delay, reset)
    try:
        if "x-fake-latency-ms" in headers:
            latency = float(headers["x-fake-latency-ms"]) / 1000.0
        if "x-fake-chunk-delay-ms" in headers:
            delay = float(headers["x-fake-chunk-delay-ms"]) / 1000.0
        if "x-fake-reset-after-chunks" in headers:
            reset = int(headers["x-fake-reset-after-chunks"])
    except ValueError:
        bad = next(name for name in headers if name.startswith("x-fake-"))
        return _knob_error(bad, headers[bad])
    status = headers.get("x-fake-status")
    if status is not None and not (
        status.isdigit() and 400 <= int(status) <= 599 and _known(int(status))
    ):
        return _knob_error("x-fake-status", status)
    tool_call = None
    if "x-fake-tool-call" in headers:
        tool_call = _tool_call(_utf8(headers["x-fake-tool-call"]))
        if tool_call is None:
            return _knob_error("x-fake-tool-call", headers["x-fake-tool-call"])
    output = headers.get("x-fake-output")
    return Knobs(
        latency_s=latency, chunk_delay_s=delay, reset_after_chunks=reset,
        status=int(status) if status is not None else None,
        output=_output_knob(output) if output is not None else None,
        malformed_sse=headers.get("x-fake-malformed-sse", "0") not in ("", "0", "false"),
        tool_call=tool_call,
    )  # fmt: skip


def _known(status: int) -> bool:
    try:
        HTTPStatus(status)
    except ValueError:
        return False
    return True


def _tool_call(raw: str) -> ToolCallSpec | None:
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        return None
    arguments = spec.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)  # vLLM's parsers use json.dumps
    return ToolCallSpec(spec["name"], arguments)


def plan_text(
    text: str, max_tokens: int | None, stop: Sequence[str]
) -> tuple[tuple[str, ...], str, str | None]:
    """Tokens, finish_reason and stop_reason for a known output text."""
    kept, stop_reason = cut_at_stop(text, stop)
    tokens = split_tokens(kept)
    if max_tokens is not None and len(tokens) > max_tokens:
        return tokens[:max_tokens], "length", None
    return tokens, "stop", stop_reason


def plan_choices(
    request: GenerationRequest,
    canned: Sequence[str | None],
    *,
    tool_call: ToolCallSpec | None,
    default_max_tokens: int,
    seed: int,
    new_tool_call_id: Callable[[], str],
) -> list[ChoiceOutput]:
    """One plan per choice: ``n`` per prompt, indexed prompt-major like vLLM's completions."""
    choices: list[ChoiceOutput] = []
    for prompt in request.prompts:
        for _ in range(request.n):
            index = len(choices)
            text = canned[index] if index < len(canned) else None
            choices.append(
                _plan_one(
                    request,
                    prompt,
                    index,
                    text,
                    tool_call,
                    default_max_tokens,
                    seed,
                    new_tool_call_id,
                )
            )
    return choices


def _plan_one(
    request: GenerationRequest,
    prompt: bytes,
    index: int,
    canned: str | None,
    tool_call: ToolCallSpec | None,
    default_max_tokens: int,
    seed: int,
    new_tool_call_id: Callable[[], str],
) -> ChoiceOutput:
    if tool_call is not None and request.endpoint == "chat":
        call = ToolCallOutput(new_tool_call_id(), tool_call.name, tool_call.arguments)
        return ChoiceOutput(index, split_tokens(tool_call.arguments), "tool_calls", None, call)
    key = b"%d|%s|%d|" % (seed, request.model.encode(), index) + prompt
    structure = request.structure
    if canned is None and structure is not None:
        if structure.choices:
            digest = hashlib.blake2b(key, digest_size=8).digest()
            canned = structure.choices[int.from_bytes(digest, "little") % len(structure.choices)]
        else:
            value = sample_json(structure.schema) if structure.schema is not None else {}
            canned = orjson.dumps(value).decode()
    if canned is not None:
        tokens, finish, stop_reason = plan_text(canned, request.max_tokens, request.stop)
        return ChoiceOutput(index, tokens, finish, stop_reason)
    tokens = gibberish(key, request.max_tokens or default_max_tokens)
    if request.stop:
        kept, stop_reason = cut_at_stop("".join(tokens), request.stop)
        if stop_reason is not None:
            return ChoiceOutput(index, split_tokens(kept), "stop", stop_reason)
    return ChoiceOutput(index, tokens, "length")
