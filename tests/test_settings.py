"""Configuration: defaults, file + environment, errors that name the key and the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sidecar.errors import ConfigError
from sidecar.settings import database_url, load_settings, settings_keys

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sidecar.yaml"
    path.write_text(text)
    return path


def test_every_key_has_a_safe_default() -> None:
    settings = load_settings(env={})
    assert settings.upstream.url == "http://127.0.0.1:8000"
    assert settings.proxy.port == 8080
    assert settings.admin.port == 8081
    assert settings.database.url.startswith("sqlite:///")


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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("proxy:\n  prot: 1\n", "proxy.prot: unknown key"),
        ("proxi:\n  port: 1\n", "proxi: unknown key"),
        ("proxy:\n  port: eighty\n", "proxy.port: Expected `int`, got `str`"),
        ("proxy:\n  port: 70000\n", "proxy.port: must be a TCP port"),
        ("spool:\n  max_bytes: 0\n", "spool.max_bytes: must be greater than 0"),
        (
            "request_log:\n  bodies: some\n",
            "request_log.bodies: Invalid enum value 'some'; use one of full, redacted, none",
        ),
        ("upstream:\n  url: localhost:8000\n", "upstream.url: must start with http://"),
        ("database:\n  url: mysql://x/y\n", "database.url: unsupported scheme"),
        ("upstream:\n  api_key: ${MISSING}\n", "environment variable MISSING is not set"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("proxy: [\n", "not valid YAML"),
    ],
)
def test_bad_configuration_names_the_key_and_the_fix(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(write(tmp_path, text), env={})


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(tmp_path / "nope.yaml", env={})


def test_plain_database_urls_get_the_async_driver() -> None:
    assert (
        database_url("postgresql://root@127.0.0.1:5432/db")
        == "postgresql+asyncpg://root@127.0.0.1:5432/db"
    )
    assert database_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"


def test_every_configuration_key_is_documented() -> None:
    documented = set(
        re.findall(r"^\| `([a-z_]+(?:\.[a-z_]+)?)` \|", DOCS.read_text(), re.MULTILINE)
    )
    missing = [key for key in settings_keys() if key not in documented]
    assert not missing, f"undocumented configuration keys in docs/configuration.md: {missing}"
    stale = documented - set(settings_keys())
    assert not stale, f"docs/configuration.md documents keys that do not exist: {stale}"
