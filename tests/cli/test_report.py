"""``sidecar report``: listed reports, an unmigrated database, a bad ``--since`` explained."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sidecar.cli import main


def test_report_list_and_unknown_report(tmp_path: Path) -> None:
    listed = CliRunner().invoke(main, ["report", "--list"])
    assert listed.exit_code == 0
    assert "compliance" in listed.output
    unknown = CliRunner().invoke(main, ["report", "nope"])
    assert unknown.exit_code == 2
    assert "unknown report 'nope'" in unknown.output


def test_report_on_a_database_that_was_never_migrated_says_what_to_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["report", "compliance", "--database-url", f"sqlite:///{tmp_path}/x.db"]
    )
    assert result.exit_code == 1
    assert "sidecar db upgrade" in result.output


def test_bad_since_is_explained() -> None:
    result = CliRunner().invoke(main, ["report", "compliance", "--since", "yesterday"])
    assert result.exit_code == 2
    assert "neither a duration" in result.output
