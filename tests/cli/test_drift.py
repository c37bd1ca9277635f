"""``sidecar drift run``: a check now, and a plain answer when there is nothing to compare."""

from __future__ import annotations

from click.testing import CliRunner

from sidecar.cli import main


def test_a_database_without_traffic_is_nothing_to_compare(migrated_database_url: str) -> None:
    result = CliRunner().invoke(main, ["drift", "run", "--database-url", migrated_database_url])
    assert result.exit_code == 0, result.output
    assert "no answered requests with drift features in the current window" in result.output


def test_an_unmigrated_database_says_what_to_run(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/never.db"
    result = CliRunner().invoke(main, ["drift", "run", "--database-url", url])
    assert result.exit_code == 1
    assert "run `sidecar db upgrade`" in result.output
