"""Through the real sidecar: traffic sampled by the writer, judged by the loop, read back with the
CLI (baseline, report), and `sidecar judge run` on requests nobody sampled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from sidecar.cli import main
from sidecar.store.tables import judgements_table
from sidecar.testing.fake_judge import FakeJudge
from sidecar.testing.harness import start_sidecar
from sidecar.testing.servers import RunningServer, start_server
from tests.helpers import sidecar_settings, sync_url, wait_for, wait_for_rows


def judgements(database_url: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            return [dict(row) for row in connection.execute(sa.select(judgements_table)).mappings()]
    finally:
        engine.dispose()


def judge_config(tmp_path: Path, judge_url: str, **judge: Any) -> Path:
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump({"judge": {"enabled": True, "base_url": f"{judge_url}/v1",
                                              "model": "judge-1", **judge}}))  # fmt: skip
    return path


def chat(client: openai.OpenAI, answer: str) -> None:
    client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "How do I reset my password?"}],
        extra_headers={"x-fake-output": answer},
    )  # fmt: skip


def test_sampled_traffic_is_scored_then_compared_with_a_baseline(
    upstream: RunningServer, judge_server: RunningServer, database_url: str, tmp_path: Path
) -> None:
    settings = sidecar_settings(
        upstream.url, database_url, tmp_path / "spool",
        judge={"enabled": True, "base_url": f"{judge_server.url}/v1", "model": "judge-1",
               "sample_rate": 1.0, "interval_s": 0.1, "baseline_auto_samples": 0},
    )  # fmt: skip
    sidecar = start_sidecar(settings)
    try:
        client = openai.OpenAI(base_url=f"{sidecar.proxy_url}/v1", api_key="client-key")
        for index in range(6):
            chat(client, f"Click 'Forgot password'. quality={4 if index % 2 else 5}")
        client.models.list()  # not a completion: never sampled
        rows = wait_for(lambda: found if len(found := judgements(database_url)) >= 6 and
                        all(r["status"] == "scored" for r in found) else None, what="6 scores")  # fmt: skip
    finally:
        sidecar.stop()
    assert sorted(row["score"] for row in rows) == [4.0, 4.0, 4.0, 5.0, 5.0, 5.0]
    assert {row["sample_reason"] for row in rows} == {"random"}

    runner = CliRunner()
    since = ["--since", "1h", "--database-url", database_url]
    result = runner.invoke(main, ["baseline", "set", "quality", *since])
    assert result.exit_code == 0, result.output
    assert "quality baseline set: model=tiny adapter=-" in result.output
    assert "n=6  mean 4.500" in result.output
    shown = runner.invoke(main, ["baseline", "show", "--database-url", database_url])
    assert "quality  model=tiny" in shown.output
    report = runner.invoke(main, ["report", "quality", *since, "--format", "json"])
    assert report.exit_code == 0, report.output
    (line,) = json.loads(report.output)["rows"]
    assert (line["model"], line["scored"], line["mean"], line["baseline"]) == (
        "tiny",
        6,
        4.5,
        4.5,
    )
    assert line["verdict"] == "insufficient data: 6 < 30 scores"


def test_judge_run_scores_unsampled_requests_on_demand(
    upstream: RunningServer, judge_server: RunningServer, database_url: str, tmp_path: Path
) -> None:
    sidecar = start_sidecar(sidecar_settings(upstream.url, database_url, tmp_path / "spool"))
    try:
        client = openai.OpenAI(base_url=f"{sidecar.proxy_url}/v1", api_key="client-key")
        for _ in range(5):
            chat(client, "Use the reset link. quality=3")
        wait_for_rows(database_url, 5, "path = '/v1/chat/completions'")
    finally:
        sidecar.stop()
    config = judge_config(tmp_path, judge_server.url)
    args = ["judge", "run", "--since", "1h", "--limit", "3", "--config", str(config),
            "--database-url", database_url]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "judged 3 requests (0 waiting samples, 3 random): 3 scored" in result.output
    rows = judgements(database_url)
    assert [(row["sample_reason"], row["score"]) for row in rows] == [("manual", 3.0)] * 3
    again = CliRunner().invoke(main, [*args[:5], "10", *args[6:]])
    assert "judged 2 requests" in again.output  # the other two; none twice


def test_with_redacted_bodies_the_judge_never_sees_personal_data(
    upstream: RunningServer, database_url: str, tmp_path: Path
) -> None:
    judge = FakeJudge()
    server = start_server(judge)
    settings = sidecar_settings(
        upstream.url, database_url, tmp_path / "spool", request_log={"bodies": "redacted"},
        judge={"enabled": True, "base_url": f"{server.url}/v1", "model": "judge-1",
               "sample_rate": 1.0, "interval_s": 0.1, "baseline_auto_samples": 0},
    )  # fmt: skip
    sidecar = start_sidecar(settings)
    try:
        client = openai.OpenAI(base_url=f"{sidecar.proxy_url}/v1", api_key="client-key")
        client.chat.completions.create(
            model="tiny",
            messages=[
                {"role": "user", "content": "I am jane.doe@example.com, card 4111 1111 1111 1111"}
            ],
            extra_headers={"x-fake-output": "Mailed jane.doe@example.com. quality=4"},
        )
        wait_for(lambda: judge.requests, what="the judge call")
    finally:
        sidecar.stop()
        server.stop()
    sent = json.dumps(judge.requests)
    assert "jane.doe@example.com" not in sent
    assert "4111 1111 1111 1111" not in sent
    assert "[EMAIL]" in sent
