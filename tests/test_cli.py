"""The command line: clear errors for bad configuration and schemas, reports listed."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from sidecar.cli import main


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
    schemas = Path(__file__).resolve().parents[1] / "schemas"
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
