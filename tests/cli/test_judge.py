"""``sidecar judge run``: without a key for OpenAI it says what to set (no database work)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sidecar.cli import main


def test_judge_run_without_a_key_for_openai_says_what_to_set(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'x.db'}"
    CliRunner().invoke(main, ["db", "upgrade", "--database-url", database])
    result = CliRunner().invoke(main, ["judge", "run", "--database-url", database])
    assert result.exit_code == 1
    assert "judge.api_key is not set" in result.output
