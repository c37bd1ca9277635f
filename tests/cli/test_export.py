"""``sidecar export training-data``: bad windows and an unmigrated database, said in one line."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sidecar.cli import main


def test_a_bad_since_names_the_option(migrated_database_url: str, tmp_path: Path) -> None:
    args = ["export", "training-data", "--since", "yesterday-ish", "--out", str(tmp_path / "x.jsonl"),
            "--database-url", migrated_database_url]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "yesterday-ish" in result.output
    assert not (tmp_path / "x.jsonl").exists()


def test_an_empty_window_writes_an_empty_file_and_says_so(
    migrated_database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "hard.jsonl"
    args = ["export", "training-data", "--out", str(out), "--database-url", migrated_database_url]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"wrote 0 examples to {out}" in result.output
    assert "by reason: none" in result.output
    assert out.read_bytes() == b""
