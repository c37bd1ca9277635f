"""Compliance end to end: openai client -> sidecar -> fake vLLM, verdicts in SQLite and Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from click.testing import CliRunner

from sidecar.cli import main
from sidecar.testing.harness import RunningSidecar, start_sidecar
from sidecar.testing.servers import RunningServer
from tests.helpers import sidecar_settings, wait_for_rows

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
TRIAGE = {"category": "billing", "priority": 2, "sentiment": "negative",
          "summary": "Charged twice", "needs_human": True}  # fmt: skip
MESSAGES: Any = [{"role": "user", "content": "I was charged twice"}]


@pytest.fixture
def compliant_sidecar(
    upstream: RunningServer, database_url: str, tmp_path: Path
) -> Iterator[RunningSidecar]:
    settings = sidecar_settings(
        upstream.url, database_url, tmp_path / "spool",
        compliance={"schemas_dir": str(SCHEMAS),
                    "rules": [{"schema": "support_triage", "adapter": "support"}]},
    )  # fmt: skip
    running = start_sidecar(settings)
    yield running
    running.stop()


def ask(sidecar: RunningSidecar, output: str, **kwargs: Any) -> Any:
    sdk = openai.OpenAI(base_url=f"{sidecar.proxy_url}/v1", api_key="k", max_retries=0)
    headers = {"x-fake-output": output, **kwargs.pop("extra_headers", {})}
    model = kwargs.pop("model", "support")
    return sdk.chat.completions.create(
        model=model, messages=MESSAGES, extra_headers=headers, **kwargs
    )


def test_verdicts_land_in_the_row_for_each_route(
    compliant_sidecar: RunningSidecar, database_url: str
) -> None:
    good = orjson.dumps(TRIAGE).decode()
    ask(compliant_sidecar, good)  # rule: adapter support -> support_triage
    ask(compliant_sidecar, orjson.dumps({**TRIAGE, "priority": 7}).decode())
    ask(compliant_sidecar, "Sure! Here is the triage:")
    ask(compliant_sidecar, "json:" + orjson.dumps("```json\n" + good + "\n```").decode())
    stream = ask(compliant_sidecar, good, stream=True)
    for _ in stream:
        pass
    ask(compliant_sidecar, '{"name": 1}', model="tiny", response_format={
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": {"type": "object", "required": ["name"],
                                                    "properties": {"name": {"type": "string"}}}},
    })  # fmt: skip
    ask(compliant_sidecar, good, model="tiny", extra_headers={"x-sidecar-schema": "code_review"})
    ask(compliant_sidecar, "hello", model="tiny")  # no schema: no verdict
    rows = wait_for_rows(database_url, 8)
    got = [(row["schema_name"], row["schema_verdict"]) for row in rows]
    assert got == [
        ("support_triage", "valid"),
        ("support_triage", "invalid"),
        ("support_triage", "unparseable"),
        ("support_triage", "valid"),
        ("support_triage", "valid"),
        ("request:person", "invalid"),
        ("code_review", "invalid"),
        (None, None),
    ]
    assert rows[1]["schema_errors"] == [
        {"path": "/priority", "message": "7 is greater than the maximum of 4"}
    ]
    assert rows[1]["schema_error_count"] == 1


def test_truncated_output_and_tool_calls(
    compliant_sidecar: RunningSidecar, database_url: str
) -> None:
    sdk = openai.OpenAI(base_url=f"{compliant_sidecar.proxy_url}/v1", api_key="k", max_retries=0)
    sdk.chat.completions.create(
        model="support", messages=MESSAGES, max_tokens=3,
        extra_headers={"x-fake-output": '{"category": "billing", "priority": 2, "sentiment": "x"}'},
    )  # fmt: skip
    tools: Any = [{"type": "function", "function": {"name": "refund", "parameters": {
        "type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}}}}]  # fmt: skip
    call = orjson.dumps({"name": "refund", "arguments": '{"amount": "ten"}'}).decode()
    stream = sdk.chat.completions.create(
        model="tiny",
        messages=MESSAGES,
        tools=tools,
        stream=True,
        extra_headers={"x-fake-tool-call": call},
    )
    for _ in stream:
        pass
    rows = wait_for_rows(database_url, 2)
    assert (rows[0]["schema_verdict"], rows[0]["finish_reason"]) == ("truncated", "length")
    assert (rows[1]["schema_name"], rows[1]["schema_verdict"]) == ("request:tools", "invalid")
    assert rows[1]["schema_errors"][0]["path"] == "tool_calls[0] refund:/amount"


def test_report_compliance_and_metrics(
    compliant_sidecar: RunningSidecar, database_url: str
) -> None:
    good = orjson.dumps(TRIAGE).decode()
    for output in (good, good, good, "nope"):
        ask(compliant_sidecar, output)
    wait_for_rows(database_url, 4)
    runner = CliRunner()
    result = runner.invoke(
        main, ["report", "compliance", "--database-url", database_url, "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = orjson.loads(result.output)["rows"]
    assert rows == [{"schema": "support_triage", "model": "support", "adapter": "support", "checked": 4,
                     "valid": 3, "invalid": 0, "unparseable": 1, "truncated": 0, "schema_error": 0,
                     "valid_pct": 75.0}]  # fmt: skip
    by_day = runner.invoke(
        main, ["report", "compliance", "--by", "day", "--database-url", database_url]
    )
    assert by_day.exit_code == 0
    assert "support_triage" in by_day.output

    metrics = httpx.get(f"{compliant_sidecar.admin_url}/metrics").text
    assert (
        'sidecar_schema_validations_total{model="support",result="valid",schema="support_triage"} 3.0'
        in metrics
    )


def test_schemas_reload_on_demand_and_a_broken_file_keeps_the_old_ones(
    upstream: RunningServer, database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "schemas"
    folder.mkdir()
    settings = sidecar_settings(upstream.url, database_url, tmp_path / "spool",
                                compliance={"schemas_dir": str(folder)})  # fmt: skip
    running = start_sidecar(settings)
    try:
        (folder / "flag.json").write_text('{"type": "boolean"}')
        assert running.call(_reload(running))
        ask(running, "true", model="tiny", extra_headers={"x-sidecar-schema": "flag"})
        (folder / "broken.json").write_text('{"type": 7}')
        assert not running.call(_reload(running))
        ask(running, "3", model="tiny", extra_headers={"x-sidecar-schema": "flag"})
    finally:
        running.stop()
    rows = wait_for_rows(database_url, 2)
    assert [(row["schema_name"], row["schema_verdict"]) for row in rows] == [
        ("flag", "valid"), ("flag", "invalid"),
    ]  # fmt: skip


async def _reload(running: RunningSidecar) -> bool:
    return running.sidecar.reload_schemas()
