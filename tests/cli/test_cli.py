"""The command line: clear errors for bad configuration and schemas, reports listed."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sidecar.cli import main
from sidecar.testing.servers import start_server
from sidecar.testing.webhook_sink import WebhookSink

SHIPPED_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def config(tmp_path: Path, **sections: object) -> Path:
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(sections))
    return path


def bad_schemas(tmp_path: Path) -> Path:
    folder = tmp_path / "schemas"
    folder.mkdir()
    (folder / "ticket.json").write_text('{"type": "object", "properties": {"p": {"minimum": "x"}}}')
    return folder


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


def test_demo_runs_the_whole_loop_and_prints_reports() -> None:
    result = CliRunner().invoke(main, ["demo", "--requests", "12"])
    assert result.exit_code == 0, result.output
    for title in ("Traffic", "Latency", "Format compliance", "User feedback"):
        assert title in result.output
    assert "sent 12 requests" in result.output


def write_rubric(path: Path) -> Path:
    path.write_text(yaml.safe_dump({"criteria": [{"name": "right", "description": "is right"}]}))
    return path


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


@pytest.mark.parametrize("module", ["sidecar", "sidecar.cli"])
def test_python_dash_m_runs_the_whole_command_line(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "alerts", "--help"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "silence" in result.stdout


def test_alerts_test_accepts_the_notifier_kind_when_there_is_one_of_it(tmp_path: Path) -> None:
    sink = WebhookSink()
    server = start_server(sink)
    try:
        path = config(tmp_path, alerts={"webhook_urls": [f"{server.url}/hook"]})
        result = CliRunner().invoke(
            main, ["alerts", "test", "--notifier", "webhook", "--config", str(path)]
        )
        assert result.exit_code == 0, result.output
        assert "webhook-0: test alert delivered" in result.output
        assert len(sink.received["/hook"]) == 1
        two = config(tmp_path, alerts={"webhook_urls": [f"{server.url}/a", f"{server.url}/b"]})
        ambiguous = CliRunner().invoke(
            main, ["alerts", "test", "--notifier", "webhook", "--config", str(two)]
        )
        assert ambiguous.exit_code == 2
        assert "2 webhook notifiers are configured: name one of webhook-0, webhook-1" in (
            ambiguous.output
        )
    finally:
        server.stop()


def test_the_schema_upgrade_at_serve_start_says_which_sqlite_folder_it_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sidecar.store.migrate import upgrade

    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="sidecar.store"):
        upgrade("sqlite:///state/db/x.db")
    assert f"created {tmp_path / 'state' / 'db'} for the SQLite database" in caplog.text
