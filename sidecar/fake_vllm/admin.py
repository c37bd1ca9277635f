"""The fake's routes besides generation: runtime LoRA, tokenizer and info (pure handlers)."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from sidecar.fake_vllm.bodies import (
    ApiError,
    missing_field,
    model_list_body,
    validation_error,
)
from sidecar.fake_vllm.config import FakeVllmConfig
from sidecar.fake_vllm.http import JSON, Reply
from sidecar.fake_vllm.requests import parse_json_object
from sidecar.fake_vllm.text import chat_template_tokens, detokenize, split_tokens, token_id

EMPTY_OK = Reply(200, b"", None)


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What a simple route sees of its request, plus the app's clock and id source."""

    config: FakeVllmConfig
    content_type: str | None
    body: bytes
    now: int
    new_id: Callable[[], str]


def error_reply(error: ApiError) -> Reply:
    return Reply(error.status, error.body())


def _fields(
    content_type: str | None, body: bytes, required: tuple[str, ...]
) -> dict[str, Any] | ApiError:
    data = parse_json_object(content_type, body)
    if isinstance(data, ApiError):
        return data
    missing = [missing_field(name, data) for name in required if data.get(name) is None]
    if missing:
        return validation_error(missing, missing[0]["loc"])
    return data


def health(request: RouteRequest) -> Reply:
    return EMPTY_OK


def version(request: RouteRequest) -> Reply:
    return Reply(200, orjson.dumps({"version": request.config.version}))


def load(request: RouteRequest) -> Reply:
    return Reply(200, b'{"server_load":0}', JSON)


def models(request: RouteRequest) -> Reply:
    config = request.config
    body = model_list_body(
        config.served_model_name,
        config.max_model_len,
        config.lora_modules,
        request.now,
        request.new_id,
    )
    return Reply(200, body)


def load_adapter(request: RouteRequest) -> Reply:
    """``POST /v1/load_lora_adapter``: success is plain text without a content type."""
    data = _fields(request.content_type, request.body, ("lora_name", "lora_path"))
    if isinstance(data, ApiError):
        return error_reply(data)
    config = request.config
    name, path = str(data["lora_name"]), str(data["lora_path"])
    adapters: MutableMapping[str, str] = config.lora_modules
    if name == config.served_model_name:
        message = f"The lora adapter '{name}' conflicts with a served base model."
        return error_reply(ApiError(400, message, "InvalidUserInput"))
    if name in adapters and data.get("load_inplace") is not True:
        message = (f"The lora adapter '{name}' has already been loaded. If you want to load the adapter "
                   "in place, set 'load_inplace' to True.")  # fmt: skip
        return error_reply(ApiError(400, message, "InvalidUserInput"))
    adapters[name] = path
    return Reply(200, f"Success: LoRA adapter '{name}' added successfully.".encode(), None)


def unload_adapter(request: RouteRequest) -> Reply:
    data = _fields(request.content_type, request.body, ("lora_name",))
    if isinstance(data, ApiError):
        return error_reply(data)
    config = request.config
    name = str(data["lora_name"])
    if name not in config.lora_modules:
        return error_reply(
            ApiError(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        )
    del config.lora_modules[name]
    return Reply(200, f"Success: LoRA adapter '{name}' removed successfully.".encode(), None)


def tokenize(request: RouteRequest) -> Reply:
    """``POST /tokenize``: the fake tokenizer's pieces, counted like the generation routes."""
    data = parse_json_object(request.content_type, request.body)
    if isinstance(data, ApiError):
        return error_reply(data)
    messages = data.get("messages")
    if isinstance(messages, list):
        pieces = chat_template_tokens(messages)
    elif isinstance(data.get("prompt"), str):
        pieces = list(split_tokens(data["prompt"]))
    else:
        return error_reply(validation_error([missing_field("prompt", data)], "body.prompt"))
    strings = pieces if data.get("return_token_strs") else None
    answer = {"count": len(pieces), "max_model_len": request.config.max_model_len,
              "tokens": [token_id(piece) for piece in pieces], "token_strs": strings}  # fmt: skip
    return Reply(200, orjson.dumps(answer))


def detokenize_tokens(request: RouteRequest) -> Reply:
    data = _fields(request.content_type, request.body, ("tokens",))
    if isinstance(data, ApiError):
        return error_reply(data)
    tokens = data["tokens"]
    if not isinstance(tokens, list) or not all(isinstance(token, int) for token in tokens):
        error = {
            "type": "list_type",
            "loc": "body.tokens",
            "msg": "Input should be a valid list",
            "input": tokens,
        }
        return error_reply(validation_error([error], "body.tokens"))
    return Reply(200, orjson.dumps({"prompt": detokenize(tokens)}))
