"""``sidecar db upgrade``: the SQLite folder created and said, or one line when it cannot be."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sidecar.cli import main


def test_db_upgrade_creates_exactly_the_sqlite_folder_given_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///nonexistent/dir/x.db"
    result = CliRunner().invoke(main, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert f"created {tmp_path / 'nonexistent' / 'dir'} for the SQLite database {url}" in (
        result.output
    )
    assert "write sqlite:////nonexistent/dir/x.db for an absolute one" in result.output
    assert (tmp_path / "nonexistent" / "dir" / "x.db").is_file()
    again = CliRunner().invoke(main, ["db", "upgrade", "--database-url", url])
    assert "created" not in again.output


def test_an_uncreatable_sqlite_folder_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    url = f"sqlite:///{blocker}/dir/x.db"
    result = CliRunner().invoke(main, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 1
    assert f"database.url: cannot create {blocker / 'dir'} for the SQLite file" in result.output
