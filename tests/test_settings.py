"""Configuration: defaults, file + environment, errors that name the key and the fix."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from sidecar.errors import ConfigError
from sidecar.settings import load_settings, settings_keys
from sidecar.settings.reference import render, rewrite
from sidecar.settings.values import Section

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
        (
            "drift:\n  embeddings: {enabled: true, model: bert}\n",
            "drift.embeddings.model: Invalid enum value 'bert'",
        ),
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


def test_every_configuration_key_is_documented() -> None:
    documented = set(
        re.findall(r"^\| `([a-z_]+(?:\.[a-z_]+)?)` \|", DOCS.read_text(), re.MULTILINE)
    )
    missing = [key for key in settings_keys() if key not in documented]
    assert not missing, f"undocumented configuration keys in docs/configuration.md: {missing}"
    stale = documented - set(settings_keys())
    assert not stale, f"docs/configuration.md documents keys that do not exist: {stale}"


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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("proxy:\n  max_body_bytes: 0\n", "proxy.max_body_bytes: must be greater than 0, got 0"),
        ("upstream:\n  read_timeout_s: -1\n", "upstream.read_timeout_s: must be greater than 0"),
        ("admin:\n  port: -1\n", "admin.port: must be a TCP port 0-65535 (0 picks a free one)"),
        ("writer:\n  workers: -1\n", "writer.workers: must be 0 (build rows in-process) or more"),
        ("cost:\n  gpu_count: -2\n", "cost.gpu_count: must not be negative, got -2"),
        ("judge:\n  sample_rate: 1.5\n", "judge.sample_rate: must be a share between 0 and 1"),
        (
            "judge:\n  rules: [{name: a}, {name: b, sample_rate: 2}]\n",
            "judge.rules[1].sample_rate: must be a share between 0 and 1 (0.05 = 5%), got 2",
        ),
        ("judge:\n  confidence: 0.4\n", "judge.confidence: must be between 0.5 and 1"),
        ("drift:\n  p_value: 1\n", "drift.p_value: must be strictly between 0 and 1, got 1"),
        ("drift:\n  reference_window_s: 0\n", "drift.reference_window_s: must be greater than 0"),
        (
            "cost:\n  api_prices: {m: {input_per_million_usd: -1, output_per_million_usd: 1}}\n",
            "cost.api_prices[...].input_per_million_usd: must not be negative",
        ),
        (
            "spool:\n  segment_bytes: 2048\n  max_bytes: 1024\n",
            "spool.segment_bytes: must not exceed",
        ),
        ("judge:\n  enabled: true\n  base_url: judge:80\n", "judge.base_url: must start with http"),
        (
            "judge:\n  always_sample: [sometimes]\n",
            "judge.always_sample[0]: Invalid enum value 'sometimes'; use one of schema_invalid, "
            "thumbs_down, error",
        ),
        ("database:\n  url: not-a-url\n", "database.url: 'not-a-url' is not a URL"),
    ],
)
def test_a_value_outside_its_declared_limits_names_the_key_and_the_limit(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(write(tmp_path, text), env={})


def test_docs_configuration_is_the_generated_reference() -> None:
    document = DOCS.read_text()
    assert document == rewrite(document), (
        "docs/configuration.md differs from the settings' declarations: run `make docs` "
        "(python -m sidecar.settings.reference --write docs/configuration.md)"
    )


def test_the_reference_shows_each_keys_type_default_limit_and_description() -> None:
    rows = {line.split(" | ")[0].strip("| `"): line for line in render().splitlines()
            if line.startswith("| `")}  # fmt: skip
    assert set(settings_keys()) <= set(rows)
    assert rows["proxy.port"].startswith(
        "| `proxy.port` | integer | `8080` | [0, 65535] | Proxy port"
    )
    assert "| `33554432` (32 MiB) | > 0 |" in rows["proxy.max_body_bytes"]
    assert "| `0.05` | [0, 1] |" in rows["judge.sample_rate"]
    assert "| `full`, `redacted`, `none` |" in rows["request_log.bodies"]
    assert "| string | required |" in rows["compliance.rules[].schema"]
    assert "| `window_s` | > 0 |" in rows["drift.reference_window_s"]
    assert "comparison: above\\|below" in rows["alerts.rules"]  # pipes escaped inside a cell


class Bare(Section, frozen=True):
    undocumented: int = 1


class Root(Section, frozen=True):
    bare: Bare = msgspec.field(default_factory=Bare)


def test_a_field_without_a_description_stops_the_generator() -> None:
    with pytest.raises(ValueError, match=r"bare.undocumented has no description"):
        render(Root)


def test_both_embedding_models_are_accepted(tmp_path: Path) -> None:
    """minilm shipped with semantic drift: a stale check refused it at start until this test."""
    for model in ("static", "minilm"):
        text = f"drift:\n  embeddings: {{enabled: true, model: {model}}}\n"
        assert load_settings(write(tmp_path, text), env={}).drift.embeddings.model == model
