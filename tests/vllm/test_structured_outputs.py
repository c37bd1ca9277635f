"""Structured outputs on the real vLLM: a bounded json_schema gives valid JSON, and the row says so.

The server runs with ``--structured-outputs-config {"backend":"xgrammar",
"disable_any_whitespace":true}`` (scripts/vllm_cpu/serve.sh): with vLLM's default a random model
emits whitespace until ``max_tokens``. Every free field is bounded for the same reason.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest
from openai.types.shared_params import ResponseFormatJSONSchema

from tests.helpers import wait_for_rows
from tests.vllm.wire import HELLO

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(300)]

PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 99},
        "ok": {"type": "boolean"},
    },
    "required": ["name", "age", "ok"],
    "additionalProperties": False,
}
RESPONSE_FORMAT: ResponseFormatJSONSchema = {"type": "json_schema",
                   "json_schema": {"name": "person", "schema": PERSON, "strict": True}}  # fmt: skip


@pytest.mark.parametrize("model", ["tiny", "support"])
def test_bounded_json_schema_output_is_valid_and_logged_valid(
    proxied: openai.OpenAI, sqlite_url: str, model: str
) -> None:
    completion = proxied.chat.completions.create(
        model=model,
        messages=HELLO,
        max_tokens=60,
        temperature=0,
        response_format=RESPONSE_FORMAT,
    )
    assert completion.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(completion.choices[0].message.content or ""), PERSON)

    row = wait_for_rows(sqlite_url, 1)[0]
    assert (row["schema_name"], row["schema_verdict"]) == ("request:person", "valid")
    assert not row["schema_error_count"]
    assert row["finish_reason"] == "stop"


def test_bounded_json_schema_stream_is_reassembled_and_logged_valid(
    proxied: openai.OpenAI, sqlite_url: str
) -> None:
    stream = proxied.chat.completions.create(
        model="legal",
        messages=HELLO,
        max_tokens=60,
        temperature=0,
        stream=True,
        response_format=RESPONSE_FORMAT,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    jsonschema.validate(json.loads(text), PERSON)

    row = wait_for_rows(sqlite_url, 1)[0]
    assert (row["schema_name"], row["schema_verdict"]) == ("request:person", "valid")
    assert row["response_body"]["choices"][0]["message"]["content"] == text
