"""``sidecar baseline set|show``: an empty window refused, none set says how to set one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from sidecar.cli import main


def test_baseline_from_an_empty_window_is_refused(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'x.db'}"
    CliRunner().invoke(main, ["db", "upgrade", "--database-url", database])
    until = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    result = CliRunner().invoke(
        main,
        [
            "baseline",
            "set",
            "quality",
            "--since",
            "7d",
            "--until",
            until,
            "--database-url",
            database,
        ],
    )
    assert result.exit_code == 1
    assert "no judge scores between" in result.output


def test_show_with_no_baseline_says_how_to_set_one(migrated_database_url: str) -> None:
    result = CliRunner().invoke(main, ["baseline", "show", "--database-url", migrated_database_url])
    assert result.exit_code == 0, result.output
    assert "no baselines set: `sidecar baseline set quality --since 7d`" in result.output
