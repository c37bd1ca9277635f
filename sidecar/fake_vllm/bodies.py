"""Response bodies and SSE events byte for byte as vLLM 0.32.0 sends them (pure builders).

Key order, explicit nulls and the per-chunk key sets follow the captures in
``reference/vllm-api.md`` sections 3-6.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

import orjson

Endpoint = Literal["chat", "completion"]

NOT_FOUND = b'{"detail":"Not Found"}'
METHOD_NOT_ALLOWED = b'{"detail":"Method Not Allowed"}'
UNAUTHORIZED = b'{"error":"Unauthorized"}'
DONE_EVENT = b"data: [DONE]\n\n"
ERROR_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    422: "UnprocessableEntityError",
    500: "InternalServerError",
    501: "NotImplementedError",
    503: "ServiceUnavailableError",
}
ROLE_TAIL = b',"prompt_token_ids":null,"prompt_text":null'


@dataclass(frozen=True, slots=True)
class ApiError:
    """One error in vLLM's nested shape; ``code`` on the wire is always ``status``."""

    status: int
    message: str
    type: str
    param: str | None = None

    def body(self) -> bytes:
        error = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.status,
        }
        return orjson.dumps({"error": error})


def status_error(status: int) -> ApiError:
    """The error vLLM would send for ``status`` (``x-fake-status`` and ``error_rate``)."""
    if status == 500:
        return ApiError(500, "Internal server error", "InternalServerError")
    phrase = HTTPStatus(status).phrase
    return ApiError(status, phrase, ERROR_TYPES.get(status, phrase))


def validation_error(errors: Sequence[Mapping[str, Any]], param: str | None) -> ApiError:
    """FastAPI's RequestValidationError as vLLM 0.32.0 words it (type ``Bad Request``)."""
    plural = "" if len(errors) == 1 else "s"
    lines = "\n  ".join(repr(dict(error)) for error in errors)
    return ApiError(
        400, f"{len(errors)} validation error{plural}:\n  {lines}", "Bad Request", param
    )


def missing_field(field: str, body: Mapping[str, Any]) -> dict[str, Any]:
    loc = f"body.{field}"
    return {
        "type": "missing",
        "loc": loc,
        "msg": "Field required",
        "input": f"<dict of {len(body)} items>",
    }


@dataclass(frozen=True, slots=True)
class ToolCallOutput:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChoiceOutput:
    """One generated choice: its tokens and how it ended."""

    index: int
    tokens: tuple[str, ...]
    finish_reason: str
    stop_reason: str | None = None
    tool_call: ToolCallOutput | None = None

    @property
    def text(self) -> str:
        return "".join(self.tokens)


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """What every body and chunk of one response shares."""

    endpoint: Endpoint
    id: str
    created: int
    model: str
    fingerprint: str
    prompt_tokens: int


def completion_tokens(choices: Sequence[ChoiceOutput]) -> int:
    return sum(len(choice.tokens) for choice in choices)


def usage(meta: ResponseMeta, choices: Sequence[ChoiceOutput]) -> dict[str, Any]:
    generated = completion_tokens(choices)
    return {
        "prompt_tokens": meta.prompt_tokens,
        "total_tokens": meta.prompt_tokens + generated,
        "completion_tokens": generated,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    }


def _tool_call(call: ToolCallOutput) -> dict[str, Any]:
    function = {"name": call.name, "arguments": call.arguments}
    return {"id": call.id, "type": "function", "function": function}


def _message(choice: ChoiceOutput) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if choice.tool_call else choice.text,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
    }
    if choice.tool_call:
        message["tool_calls"] = [_tool_call(choice.tool_call)]
    message["reasoning"] = None
    return message


def response_body(meta: ResponseMeta, choices: Sequence[ChoiceOutput]) -> bytes:
    """The non-streaming body of a chat completion or a completion."""
    if meta.endpoint == "chat":
        rendered = [
            {"index": choice.index, "message": _message(choice), "logprobs": None,
             "finish_reason": choice.finish_reason, "stop_reason": choice.stop_reason,
             "token_ids": None, "routed_experts": None}
            for choice in choices
        ]  # fmt: skip
        body: dict[str, Any] = {"id": meta.id, "object": "chat.completion"}
    else:
        rendered = [
            {"index": choice.index, "text": choice.text, "logprobs": None,
             "finish_reason": choice.finish_reason, "stop_reason": choice.stop_reason,
             "token_ids": None, "prompt_logprobs": None, "prompt_token_ids": None,
             "routed_experts": None}
            for choice in choices
        ]  # fmt: skip
        body = {"id": meta.id, "object": "text_completion"}
    body.update(created=meta.created, model=meta.model, choices=rendered, service_tier=None)
    body.update(system_fingerprint=meta.fingerprint, usage=usage(meta, choices))
    if meta.endpoint == "chat":
        body.update(prompt_logprobs=None, prompt_token_ids=None, prompt_text=None)
    body.update(kv_transfer_params=None, ec_transfer_params=None, metrics=None)
    return orjson.dumps(body)


def _deltas(choice: ChoiceOutput) -> list[dict[str, Any]]:
    """The ``delta`` objects of one chat choice after its role chunk; the last one finishes."""
    call = choice.tool_call
    if call is None:
        return [{"content": token} for token in choice.tokens] or [{"content": ""}]
    header = {"id": call.id, "type": "function", "index": 0, "function": {"name": call.name}}
    pieces = [
        {"tool_calls": [{"index": 0, "function": {"arguments": token}}]} for token in choice.tokens
    ]
    return [
        {"tool_calls": [header]},
        *(pieces or [{"tool_calls": [{"index": 0, "function": {"arguments": ""}}]}]),
    ]


def _pieces(meta: ResponseMeta, choice: ChoiceOutput) -> list[dict[str, Any]]:
    if meta.endpoint == "chat":
        return _deltas(choice)
    return [{"text": token} for token in choice.tokens] or [{"text": ""}]


def _choice_chunk(
    meta: ResponseMeta, index: int, piece: dict[str, Any], finish: ChoiceOutput | None
) -> dict[str, Any]:
    reason = finish.finish_reason if finish else None
    stop_reason = finish.stop_reason if finish else None
    if meta.endpoint == "chat":
        chunk: dict[str, Any] = {
            "index": index,
            "delta": piece,
            "logprobs": None,
            "finish_reason": reason,
        }
        if finish:
            chunk["stop_reason"] = stop_reason
        chunk["token_ids"] = None
        return chunk
    return {"index": index, "text": piece["text"], "logprobs": None, "finish_reason": reason,
            "stop_reason": stop_reason, "prompt_token_ids": None, "token_ids": None}  # fmt: skip


def stream_events(
    meta: ResponseMeta,
    choices: Sequence[ChoiceOutput],
    *,
    include_usage: bool,
    continuous_usage: bool,
) -> list[bytes]:
    """Every SSE event of a stream, ``data: [DONE]`` last."""
    object_name = "chat.completion.chunk" if meta.endpoint == "chat" else "text_completion"
    head = {"id": meta.id, "object": object_name, "created": meta.created, "model": meta.model}
    prefix = b"data: " + orjson.dumps(head)[:-1] + b',"choices":['
    fingerprint = b',"system_fingerprint":' + orjson.dumps(meta.fingerprint)

    def running_usage(generated: int) -> bytes:
        if not continuous_usage:
            return b""
        total = meta.prompt_tokens + generated
        return (b',"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d,'
                b'"completion_tokens_details":null}' % (meta.prompt_tokens, total, generated))  # fmt: skip

    events: list[bytes] = []
    if meta.endpoint == "chat":
        for choice in choices:
            role = {
                "index": choice.index,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
            events.append(
                prefix + orjson.dumps(role) + b"]" + running_usage(0) + ROLE_TAIL + b"}\n\n"
            )
    pieces = [_pieces(meta, choice) for choice in choices]
    emitted = [0] * len(choices)
    for step in range(max((len(p) for p in pieces), default=0)):
        for position, choice in enumerate(choices):
            if step >= len(pieces[position]):
                continue
            piece = pieces[position][step]
            last = step == len(pieces[position]) - 1
            if "tool_calls" not in piece or "id" not in piece["tool_calls"][0]:
                emitted[position] = min(emitted[position] + 1, len(choice.tokens))
            chunk = _choice_chunk(meta, choice.index, piece, choice if last else None)
            tail = fingerprint if last and not include_usage else b""
            events.append(
                prefix
                + orjson.dumps(chunk)
                + b"]"
                + running_usage(emitted[position])
                + tail
                + b"}\n\n"
            )
    if include_usage:
        generated = completion_tokens(choices)
        total = {
            "prompt_tokens": meta.prompt_tokens,
            "total_tokens": meta.prompt_tokens + generated,
            "completion_tokens": generated,
        }
        events.append(prefix + b'],"usage":' + orjson.dumps(total) + fingerprint + b"}\n\n")
    events.append(DONE_EVENT)
    return events


def malformed_event(event: bytes) -> bytes:
    """``event`` with its JSON cut in half: still framed as SSE, no longer parseable."""
    payload = event.removesuffix(b"\n\n")
    return payload[: max(len(payload) // 2, len(b"data: {"))] + b"\n\n"


def model_list_body(
    served_model_name: str,
    max_model_len: int,
    adapters: Mapping[str, str],
    created: int,
    new_id: Callable[[], str],
) -> bytes:
    """``GET /v1/models``: the base card, then one card per adapter in insertion order."""

    def card(name: str, root: str, parent: str | None, length: int | None) -> dict[str, Any]:
        permission = {
            "id": f"modelperm-{new_id()}", "object": "model_permission", "created": created,
            "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
            "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
            "organization": "*", "group": None, "is_blocking": False,
        }  # fmt: skip
        return {"id": name, "object": "model", "created": created, "owned_by": "vllm", "root": root,
                "parent": parent, "max_model_len": length, "permission": [permission]}  # fmt: skip

    cards = [card(served_model_name, served_model_name, None, max_model_len)]
    cards += [card(name, path, served_model_name, None) for name, path in adapters.items()]
    return orjson.dumps({"object": "list", "data": cards})
