"""``sidecar check-config`` and ``serve``: bad configuration and schemas named, what was picked up said."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from sidecar.cli import main
from tests.cli.configs import SHIPPED_SCHEMAS, bad_schemas, config, write_rubric


def test_check_config_accepts_defaults_and_lists_schemas(tmp_path: Path) -> None:
    schemas = Path(__file__).resolve().parents[2] / "schemas"
    result = CliRunner().invoke(
        main,
        [
            "check-config",
            "--config",
            str(config(tmp_path, compliance={"schemas_dir": str(schemas)})),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "configuration OK" in result.output
    assert "support_triage" in result.output


def test_check_config_names_the_bad_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["check-config", "--config", str(config(tmp_path, proxy={"prot": 1}))]
    )
    assert result.exit_code == 1
    assert "proxy.prot: unknown key" in result.output


def test_invalid_schema_file_refuses_to_start_naming_file_and_pointer(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        compliance={"schemas_dir": str(bad_schemas(tmp_path))},
        proxy={"port": 0}, admin={"port": 0},
        database={"url": f"sqlite:///{tmp_path}/db.sqlite"}, spool={"dir": str(tmp_path / "spool")},
    )  # fmt: skip
    for command in (["check-config"], ["serve"]):
        result = CliRunner().invoke(main, [*command, "--config", str(path)])
        assert result.exit_code == 1, result.output
        assert "ticket.json: invalid schema at /properties/p/minimum" in result.output


def test_rule_naming_an_unknown_schema_is_a_config_error(tmp_path: Path) -> None:
    path = config(
        tmp_path, compliance={"rules": [{"schema": "nope"}], "schemas_dir": str(tmp_path)}
    )
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 1
    assert "compliance.rules: schema 'nope' is not in" in result.output


def test_check_config_refuses_a_missing_judge_rubric_naming_the_field_as_serve_does(
    tmp_path: Path,
) -> None:
    path = config(
        tmp_path,
        judge={"enabled": True, "rubric": "missing-rubric.yaml", "api_key": "k"},
        proxy={"port": 0}, admin={"port": 0},
        database={"url": f"sqlite:///{tmp_path}/db.sqlite"}, spool={"dir": str(tmp_path / "spool")},
    )  # fmt: skip
    for command in (["check-config"], ["serve"]):
        result = CliRunner().invoke(main, [*command, "--config", str(path)])
        assert result.exit_code == 1, result.output
        assert "judge.rubric: rubric" in result.output
        assert str(tmp_path / "missing-rubric.yaml") in result.output


def test_check_config_refuses_a_notifier_url_that_is_not_http(tmp_path: Path) -> None:
    path = config(tmp_path, alerts={"webhook_urls": ["https://hooks.example/a", "hooks.example/b"]})
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 1
    assert "alerts.webhook_urls[1]: 'hooks.example/b' is not an http:// or https:// URL" in (
        result.output
    )


def test_check_config_ok_line_says_what_was_picked_up(tmp_path: Path) -> None:
    write_rubric(tmp_path / "rubric.yaml")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "ticket.json").write_text('{"type": "object"}')
    path = config(
        tmp_path,
        upstream={"url": "http://vllm:s3cret@gpu-host:8000"},
        compliance={"schemas_dir": "schemas"},
        judge={"enabled": True, "model": "judge-7b", "base_url": "http://judge:9000/v1",
               "rubric": "rubric.yaml"},
        alerts={"slack_webhook_url": "https://hooks.slack.com/x",
                "webhook_urls": ["http://a.example/hook", "http://b.example/hook"]},
    )  # fmt: skip
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("configuration OK: upstream http://vllm:***@gpu-host:8000,")
    assert "s3cret" not in result.output
    assert "judge: on (judge-7b at http://judge:9000/v1)" in line
    assert "notifiers: 4 (1 slack, 2 webhook, 1 log)" in line
    assert f"schemas: 1 from {tmp_path / 'schemas'} (ticket)" in line
    off = CliRunner().invoke(main, ["check-config", "--config", str(config(tmp_path))])
    assert "judge: off" in off.output


def test_relative_paths_are_read_against_the_config_directory_from_any_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "etc"
    home.mkdir()
    shutil.copytree(SHIPPED_SCHEMAS, home / "schemas")
    write_rubric(home / "rubric.yaml")
    path = config(home, compliance={"schemas_dir": "schemas"},
                  judge={"enabled": True, "rubric": "rubric.yaml", "api_key": "k"})  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert f"schemas: 3 from {home / 'schemas'}" in result.output


def test_a_missing_schemas_dir_is_named_with_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(tmp_path, compliance={"schemas_dir": "my-schemas"})
    monkeypatch.chdir(tmp_path.parent)
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert f"compliance.schemas_dir: {tmp_path / 'my-schemas'} does not exist" in result.output
    (tmp_path / "my-schemas").mkdir()
    empty = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert f"{tmp_path / 'my-schemas'} has no *.json schema files" in empty.output


def test_the_schema_upgrade_at_serve_start_says_which_sqlite_folder_it_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sidecar.store.migrate import upgrade

    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="sidecar.store"):
        upgrade("sqlite:///state/db/x.db")
    assert f"created {tmp_path / 'state' / 'db'} for the SQLite database" in caplog.text
