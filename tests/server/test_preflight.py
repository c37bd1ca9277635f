"""What serve and check-config check before starting, called directly: warnings that name the
absolute path, errors that name the key, and one line saying what was picked up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar.errors import ConfigError
from sidecar.server.preflight import preflight, summary, without_password
from sidecar.settings import Settings, load_settings


def settings(**sections: dict[str, Any]) -> Settings:
    return load_settings(env={}, overrides=sections)


def test_a_missing_schema_directory_is_a_warning_naming_the_absolute_path(tmp_path: Path) -> None:
    checked = preflight(settings(compliance={"schemas_dir": str(tmp_path / "nowhere")}))
    assert checked.schemas == ()
    (warning,) = checked.warnings
    assert warning.startswith(f"compliance.schemas_dir: {tmp_path / 'nowhere'} does not exist")


def test_schemas_found_are_listed_in_the_summary(tmp_path: Path) -> None:
    (tmp_path / "ticket.json").write_text('{"type": "object"}')
    configured = settings(
        compliance={"schemas_dir": str(tmp_path)},
        upstream={"url": "http://vllm:secret@gpu:8000"},
        alerts={"webhook_urls": ["https://hooks.example/a"]},
    )
    checked = preflight(configured)
    assert (checked.schemas, checked.warnings) == (("ticket",), ())
    line = summary(configured, checked)
    assert f"schemas: 1 from {tmp_path} (ticket)" in line
    assert "upstream http://vllm:***@gpu:8000" in line
    assert "secret" not in line
    assert "judge: off" in line
    assert "notifiers: 2 (1 webhook, 1 log)" in line


def test_a_notifier_url_without_a_host_names_its_key() -> None:
    with pytest.raises(ConfigError, match=r"alerts\.webhook_urls\[1\]: 'http://' is not"):
        preflight(settings(alerts={"webhook_urls": ["http://ok.example", "http://"]}))


def test_a_missing_rubric_file_names_the_key_when_the_judge_is_on(tmp_path: Path) -> None:
    judge = {"enabled": True, "api_key": "k", "rubric": str(tmp_path / "gone.yaml")}
    with pytest.raises(ConfigError, match=r"^judge\.rubric: "):
        preflight(settings(judge=judge))
    preflight(settings(judge={**judge, "enabled": False}))  # off: the file is never read


def test_a_judge_on_openai_without_a_key_is_a_warning_not_a_refusal() -> None:
    checked = preflight(settings(judge={"enabled": True}))
    assert checked.rubrics is not None
    assert any(warning.startswith("judge.api_key: not set") for warning in checked.warnings)


def test_passwords_are_hidden_only_where_there_is_one() -> None:
    assert (
        without_password("postgresql://sidecar:pw@db:5432/x")
        == "postgresql://sidecar:***@db:5432/x"
    )
    assert without_password("sqlite:///a.db") == "sqlite:///a.db"
