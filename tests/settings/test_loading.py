"""Loading: defaults, the file and the environment, ${VAR} secrets, paths read against the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.errors import ConfigError
from sidecar.settings import load_settings
from tests.settings.files import write


def test_environment_overrides_the_file_for_upstream_and_database(tmp_path: Path) -> None:
    path = write(tmp_path, "upstream:\n  url: http://file:8000\n")
    settings = load_settings(path, env={"SIDECAR_UPSTREAM_URL": "http://env:9000",
                                        "SIDECAR_DATABASE_URL": "postgresql://u@h/db"})  # fmt: skip
    assert settings.upstream.url == "http://env:9000"
    assert settings.database.url == "postgresql://u@h/db"


def test_config_file_can_come_from_sidecar_config(tmp_path: Path) -> None:
    path = write(tmp_path, "proxy:\n  port: 9999\n")
    assert load_settings(env={"SIDECAR_CONFIG": str(path)}).proxy.port == 9999


def test_secrets_are_interpolated_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "upstream:\n  api_key: ${VLLM_KEY}\nadmin:\n  token: ${T:-fallback}\n")
    settings = load_settings(path, env={"VLLM_KEY": "s3cret"})
    assert settings.upstream.api_key == "s3cret"
    assert settings.admin.token == "fallback"


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(tmp_path / "nope.yaml", env={})


def test_relative_paths_in_the_file_are_read_against_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "etc" / "sidecar"
    home.mkdir(parents=True)
    path = write(home, """
spool: {dir: spool}
compliance: {schemas_dir: ../schemas}
judge: {rubric: rubrics/default.yaml, rules: [{name: a, rubric: a.yaml}, {name: b, rubric: /abs/b.yaml}]}
database: {url: "sqlite:///data/sidecar.db"}
""")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    settings = load_settings(path, env={})
    assert settings.spool.dir == str(home / "spool")
    assert settings.compliance.schemas_dir == str(home / "../schemas")
    assert settings.judge.rubric == str(home / "rubrics/default.yaml")
    assert [rule.rubric for rule in settings.judge.rules] == [str(home / "a.yaml"), "/abs/b.yaml"]
    assert settings.database.url == f"sqlite:///{home}/data/sidecar.db"


def test_paths_from_flags_and_the_environment_stay_as_given(tmp_path: Path) -> None:
    path = write(tmp_path, "spool: {dir: spool}\n")
    settings = load_settings(
        path, env={"SIDECAR_DATABASE_URL": "sqlite:///here.db"}, overrides={"spool": {"dir": "x"}}
    )
    assert settings.spool.dir == "x"
    assert settings.database.url == "sqlite:///here.db"
    for url in ("sqlite:////abs/x.db", "sqlite://", "sqlite:///:memory:", "postgresql://u@h/db"):
        written = write(tmp_path, f"database: {{url: {url!r}}}\n")
        assert load_settings(written, env={}).database.url == url


def test_an_unset_variable_outside_the_sections_used_keeps_the_default_with_a_warning(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, """
judge: {api_key: "${JUDGE_KEY}", model: m}
alerts: {webhook_urls: ["http://a/hook", "${HOOK_URL}"]}
cost: {gpu_hourly_usd: 2}
""")  # fmt: skip
    warnings: list[str] = []
    settings = load_settings(path, env={}, sections_used=("database", "cost"), warn=warnings.append)
    assert settings.judge.api_key is None
    assert settings.judge.model == "m"
    assert settings.alerts.webhook_urls == ["http://a/hook"]
    assert settings.cost.gpu_hourly_usd == 2
    assert [w.split(";")[0] for w in warnings] == [
        "judge.api_key: environment variable JUDGE_KEY is not set",
        "alerts.webhook_urls[1]: environment variable HOOK_URL is not set",
    ]
    with pytest.raises(ConfigError, match=r"judge.api_key: environment variable JUDGE_KEY"):
        load_settings(path, env={})
    with pytest.raises(ConfigError, match=r"judge.api_key: environment variable JUDGE_KEY"):
        load_settings(path, env={}, sections_used=("judge",))
