"""Settings loading shared by every command: read-only commands read only their sections."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sidecar.cli import main
from tests.cli.configs import config


def test_read_only_commands_run_with_a_warning_when_an_unrelated_variable_is_unset(
    tmp_path: Path, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    path = config(tmp_path, judge={"api_key": "${JUDGE_KEY}"},
                  database={"url": migrated_database_url})  # fmt: skip
    out = tmp_path / "train.jsonl"
    for command in (
        ["report", "cost"],
        ["report", "traffic"],
        ["baseline", "show"],
        ["alerts", "list"],
        ["export", "training-data", "--out", str(out)],
        ["db", "current"],
    ):
        result = CliRunner().invoke(main, [*command, "--config", str(path)])
        assert result.exit_code == 0, (command, result.output)
        assert "judge.api_key: environment variable JUDGE_KEY is not set" in result.output
    for command in (["check-config"], ["serve"]):
        refused = CliRunner().invoke(main, [*command, "--config", str(path)])
        assert refused.exit_code == 1
        assert "judge.api_key: environment variable JUDGE_KEY is not set" in refused.output


def test_an_unset_variable_in_a_section_the_command_reads_still_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DB_URL", raising=False)
    path = config(tmp_path, database={"url": "${DB_URL}"})
    result = CliRunner().invoke(main, ["report", "traffic", "--config", str(path)])
    assert result.exit_code == 1
    assert "database.url: environment variable DB_URL is not set" in result.output
