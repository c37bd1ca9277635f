"""Reading a generation request the way vLLM 0.32.0 validates it (pure; errors as ``ApiError``).

Check order: content type, JSON, required fields, ``stream_options``, model, then the sampling
checks (``n``, ``temperature``, ``max_tokens``) and the prompt length.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from sidecar.fake_vllm.bodies import ApiError, Endpoint, missing_field, validation_error
from sidecar.fake_vllm.text import chat_prompt_tokens, count_tokens

UNSUPPORTED_MEDIA_TYPE = ApiError(
    400,
    "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed",
    "Bad Request",
)


@dataclass(frozen=True, slots=True)
class Structure:
    """An output constraint: a JSON schema (``None`` = any JSON object) or a list of choices."""

    schema: Any = None
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    endpoint: Endpoint
    model: str
    prompts: tuple[bytes, ...]
    prompt_tokens: int
    n: int
    max_tokens: int | None
    stream: bool
    include_usage: bool
    continuous_usage: bool
    stop: tuple[str, ...]
    structure: Structure | None
    request_id: str | None


def parse_json_object(content_type: str | None, body: bytes) -> dict[str, Any] | ApiError:
    """``validate_json_request`` plus FastAPI's body parsing."""
    if content_type is None or content_type.split(";", 1)[0].strip().lower() != "application/json":
        return UNSUPPORTED_MEDIA_TYPE
    if not body:
        error = {"type": "missing", "loc": "body", "msg": "Field required", "input": None}
        return validation_error([error], "body")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _json_error(body)
    if not isinstance(value, dict):
        kind = type(value).__name__
        error = {"type": "model_attributes_type", "loc": "body",
                 "msg": "Input should be a valid dictionary or object to extract fields from",
                 "input": f"<{kind} of {len(value) if isinstance(value, list) else 1} items>"}  # fmt: skip
        return validation_error([error], "body")
    return value


def _json_error(body: bytes) -> ApiError:
    try:
        json.loads(body)
    except json.JSONDecodeError as exc:
        position, reason = exc.pos, exc.msg
    except ValueError as exc:  # undecodable bytes
        position, reason = 0, str(exc)
    else:  # orjson is stricter than json (lone surrogates, huge numbers)
        position, reason = 0, "Invalid JSON"
    loc = f"body.{position}"
    error = {"type": "json_invalid", "loc": loc, "msg": "JSON decode error", "input": "<dict of 0 items>",
             "ctx": {"error": reason}}  # fmt: skip
    return validation_error([error], loc)


def resolve_model(requested: Any, served: str, adapters: Mapping[str, str]) -> str | ApiError:
    """The name to echo: the first served name for a base alias, else the adapter's name."""
    if requested is None or requested in ("", served):
        return served
    if isinstance(requested, str) and requested in adapters:
        return requested
    message = f"The model `{requested}` does not exist. Valid aliases: {served}."
    return ApiError(404, message, "NotFoundError", "model")


def parse_generation_request(
    endpoint: Endpoint,
    content_type: str | None,
    body: bytes,
    served: str,
    adapters: Mapping[str, str],
    max_model_len: int,
) -> GenerationRequest | ApiError:
    data = parse_json_object(content_type, body)
    if isinstance(data, ApiError):
        return data
    prompts = _prompts(endpoint, data)
    if isinstance(prompts, ApiError):
        return prompts
    stream = data.get("stream") is True
    stream_options = data.get("stream_options")
    if stream_options and not stream:
        message = (
            "Stream options can only be defined when `stream=True`. (parameter=stream_options)"
        )
        return ApiError(400, message, "BadRequestError", "stream_options")
    model = resolve_model(data.get("model"), served, adapters)
    if isinstance(model, ApiError):
        return model
    sampling = _check_sampling(data, max_model_len)
    if isinstance(sampling, ApiError):
        return sampling
    n, max_tokens = sampling
    keys, prompt_tokens = prompts
    if prompt_tokens > max_model_len:
        seen = max_model_len + 1
        message = (f"This model's maximum context length is {max_model_len} tokens. However, your prompt "
                   f"contains at least {seen} input tokens, which exceeds this limit even without any "
                   f"output tokens. Please reduce the length of the input prompt. "
                   f"(parameter=input_tokens, value={seen})")  # fmt: skip
        return ApiError(400, message, "BadRequestError", "input_tokens")
    structure = _structure(data)
    if isinstance(structure, ApiError):
        return structure
    options = stream_options if isinstance(stream_options, dict) else {}
    include_usage = stream and bool(options.get("include_usage"))
    stop = data.get("stop")
    if stop is not None and not isinstance(stop, str | list):
        # vLLM's pydantic model (stop: str | list[str] | None) refuses it before generating.
        message = ("1 validation error:\n  {'type': 'string_type', 'loc': 'body.stop.str', "
                   f"'msg': 'Input should be a valid string', 'input': {stop!r}}}")  # fmt: skip
        return ApiError(400, message, "Bad Request", "body.stop.str")
    stops = (stop,) if isinstance(stop, str) else tuple(s for s in stop or () if isinstance(s, str))
    request_id = data.get("request_id")
    return GenerationRequest(
        endpoint=endpoint, model=model, prompts=keys, prompt_tokens=prompt_tokens, n=n,
        max_tokens=max_tokens, stream=stream, include_usage=include_usage,
        continuous_usage=include_usage and bool(options.get("continuous_usage_stats")),
        stop=stops, structure=structure,
        request_id=request_id if isinstance(request_id, str) and request_id else None,
    )  # fmt: skip


def _prompts(endpoint: Endpoint, data: dict[str, Any]) -> tuple[tuple[bytes, ...], int] | ApiError:
    """Hashable keys of the prompt(s) and their total token count."""
    if endpoint == "chat":
        messages = data.get("messages")
        if messages is None:
            return validation_error([missing_field("messages", data)], "body.messages")
        if not isinstance(messages, list):
            error = {"type": "list_type", "loc": "body.messages", "msg": "Input should be a valid list",
                     "input": messages}  # fmt: skip
            return validation_error([error], "body.messages")
        return (orjson.dumps(messages),), chat_prompt_tokens(messages)
    prompt = data.get("prompt")
    if prompt is None or prompt in ("", []):
        message = "Either prompt or prompt_embeds must be provided and non-empty."
        return ApiError(400, message, "BadRequestError")
    if isinstance(prompt, str):
        return (prompt.encode(),), count_tokens(prompt)
    if isinstance(prompt, list) and all(isinstance(item, str) for item in prompt):
        return tuple(item.encode() for item in prompt), sum(count_tokens(item) for item in prompt)
    if isinstance(prompt, list) and all(isinstance(item, int) for item in prompt):
        return (orjson.dumps(prompt),), len(prompt)
    if isinstance(prompt, list) and all(isinstance(item, list) for item in prompt):
        return tuple(orjson.dumps(item) for item in prompt), sum(len(item) for item in prompt)
    error = {
        "type": "string_type",
        "loc": "body.prompt",
        "msg": "Input should be a valid string",
        "input": prompt,
    }
    return validation_error([error], "body.prompt")


def _integer(data: dict[str, Any], name: str) -> int | ApiError | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        error = {
            "type": "int_type",
            "loc": f"body.{name}",
            "msg": "Input should be a valid integer",
            "input": value,
        }
        return validation_error([error], f"body.{name}")
    return int(value)


def _check_sampling(data: dict[str, Any], max_model_len: int) -> tuple[int, int | None] | ApiError:
    n = _integer(data, "n")
    if isinstance(n, ApiError):
        return n
    max_tokens = _integer(data, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _integer(data, "max_tokens")
    if isinstance(max_tokens, ApiError):
        return max_tokens
    n = 1 if n is None else n
    if n < 1:
        return ApiError(400, f"n must be at least 1, got {n}.", "BadRequestError")
    temperature = data.get("temperature")
    if (
        isinstance(temperature, int | float)
        and not isinstance(temperature, bool)
        and temperature < 0
    ):
        value = float(temperature)
        message = (
            f"temperature must be non-negative, got {value}. (parameter=temperature, value={value})"
        )
        return ApiError(400, message, "BadRequestError", "temperature")
    if max_tokens is not None and max_tokens > max_model_len:
        message = (f"max_tokens={max_tokens} cannot be greater than max_model_len={max_model_len}. "
                   f"Please request fewer output tokens. (parameter=max_tokens, value={max_tokens})")  # fmt: skip
        return ApiError(400, message, "BadRequestError", "max_tokens")
    if max_tokens is not None and max_tokens < 1:
        return ApiError(400, f"max_tokens must be at least 1, got {max_tokens}.", "BadRequestError")
    return n, max_tokens


def _structure(data: dict[str, Any]) -> Structure | ApiError | None:
    """``response_format`` wins over the matching key of ``structured_outputs``."""
    response_format = data.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_schema":
            spec = response_format.get("json_schema")
            if not isinstance(spec, dict):
                message = ("When response_format type is 'json_schema', the 'json_schema' field must be "
                           "provided. (parameter=response_format)")  # fmt: skip
                return ApiError(400, message, "BadRequestError", "response_format")
            return Structure(schema=spec.get("schema", spec.get("json_schema")))
        if kind == "json_object":
            return Structure()
    outputs = data.get("structured_outputs")
    if not isinstance(outputs, dict):
        return None
    kinds = [key for key in ("json", "regex", "choice") if outputs.get(key) is not None]
    if len(kinds) > 1:
        message = "You can only use one kind of constraints for structured outputs ('json', 'regex' or 'choice')."
        return ApiError(400, message, "BadRequestError")
    choice = outputs.get("choice")
    if isinstance(choice, list) and choice:
        return Structure(choices=tuple(str(item) for item in choice))
    json_spec = outputs.get("json")
    if json_spec is not None:
        return Structure(schema=_load_schema(json_spec))
    if outputs.get("json_object"):
        return Structure()
    return None


def _load_schema(spec: Any) -> Any:
    if not isinstance(spec, str):
        return spec
    try:
        return orjson.loads(spec)
    except orjson.JSONDecodeError:
        return None
