"""One explicit settings object, built once from a YAML file and the environment.

This is the only module that reads environment variables. Every key is
optional; unknown keys and bad values raise :class:`ConfigError` naming the key
and the fix. ``${VAR}`` and ``${VAR:-default}`` inside string values are
replaced from the environment (for secrets).
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from sidecar.errors import ConfigError

DEFAULT_UPSTREAM_URL = "http://127.0.0.1:8000"
DEFAULT_DATABASE_URL = "sqlite:///.sidecar/sidecar.db"
MiB = 1024 * 1024


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class UpstreamSettings(_Section, frozen=True):
    url: str = DEFAULT_UPSTREAM_URL
    api_key: str | None = None
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 600.0
    max_connections: int = 512
    models_refresh_s: float = 30.0


class ProxySettings(_Section, frozen=True):
    host: str = "0.0.0.0"
    port: int = 8080
    max_body_bytes: int = 32 * MiB
    inject_stream_usage: bool = True
    max_capture_bytes: int = 16 * MiB


class AdminSettings(_Section, frozen=True):
    host: str = "127.0.0.1"
    port: int = 8081
    token: str | None = None


class DatabaseSettings(_Section, frozen=True):
    url: str = DEFAULT_DATABASE_URL
    auto_migrate: bool = True
    pool_size: int = 5
    statement_timeout_s: float = 30.0


class RequestLogSettings(_Section, frozen=True):
    bodies: Literal["full", "redacted", "none"] = "full"
    max_body_bytes: int = 1 * MiB


class SpoolSettings(_Section, frozen=True):
    dir: str = ".sidecar/spool"
    max_bytes: int = 1024 * MiB
    segment_bytes: int = 64 * MiB
    fsync: Literal["always", "interval", "never"] = "interval"
    fsync_interval_s: float = 1.0
    full_policy: Literal["drop_new"] = "drop_new"


class WriterSettings(_Section, frozen=True):
    workers: int = 1
    batch_size: int = 500
    linger_s: float = 0.05
    idle_poll_s: float = 0.2
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0


class SchemaRuleSettings(_Section, frozen=True):
    schema: str
    model: str | None = None
    adapter: str | None = None
    path: str | None = None
    allow_fenced: bool | None = None


class ComplianceSettings(_Section, frozen=True):
    enabled: bool = True
    schemas_dir: str = "schemas"
    allow_fenced: bool = True
    rules: list[SchemaRuleSettings] = msgspec.field(default_factory=list)


class ApiPrice(_Section, frozen=True):
    input_per_million_usd: float
    output_per_million_usd: float


# OpenAI list prices per 1M tokens, as of 2024-08 (gpt-4o-2024-08-06, gpt-4o-mini-2024-07-18,
# fine-tuned gpt-4o-mini inference). Override or extend them in cost.api_prices.
PRICES_AS_OF = "2024-08 OpenAI list prices"
DEFAULT_API_PRICES = {
    "gpt-4o": ApiPrice(input_per_million_usd=2.50, output_per_million_usd=10.00),
    "gpt-4o-mini": ApiPrice(input_per_million_usd=0.15, output_per_million_usd=0.60),
    "ft:gpt-4o-mini": ApiPrice(input_per_million_usd=0.30, output_per_million_usd=1.20),
}


class CostSettings(_Section, frozen=True):
    gpu_hourly_usd: float = 1.50
    gpu_count: int = 1
    gpu_monthly_usd: float | None = None
    system_prompt_tokens: int = 0
    api_prices: dict[str, ApiPrice] = msgspec.field(default_factory=dict)

    @property
    def prices(self) -> dict[str, ApiPrice]:
        """The shipped list prices, overridden or extended by ``api_prices``."""
        return {**DEFAULT_API_PRICES, **self.api_prices}

    @property
    def monthly_gpu_usd(self) -> float:
        """The configured monthly cost, else hourly x 730 h x GPUs."""
        if self.gpu_monthly_usd is not None:
            return self.gpu_monthly_usd
        return self.gpu_hourly_usd * HOURS_PER_MONTH * self.gpu_count


HOURS_PER_MONTH = 730.0


class AlertRuleSettings(_Section, frozen=True):
    name: str
    kind: str | None = (
        None  # a reader: latency, compliance_rate, error_rate, throughput, satisfaction
    )
    threshold: float | None = None
    comparison: Literal["above", "below"] | None = None
    window_s: float | None = None
    for_s: float | None = None
    min_samples: int | None = None
    repeat_interval_s: float | None = None
    severity: str | None = None
    group_by: list[str] | None = None
    quantile: float | None = None
    metric: Literal["latency", "ttft"] | None = None
    features: list[str] | None = None  # drift: only these features count
    enabled: bool = True


class AlertSettings(_Section, frozen=True):
    enabled: bool = True
    rules: list[AlertRuleSettings] = msgspec.field(default_factory=list)
    interval_s: float = 30.0
    slack_webhook_url: str | None = None
    webhook_urls: list[str] = msgspec.field(default_factory=list)
    log: bool = True


class JudgeRuleSettings(_Section, frozen=True):
    """Which traffic a rubric and sample rate apply to (first match wins)."""

    name: str
    model: str | None = None
    adapter: str | None = None
    schema: str | None = None
    sample_rate: float | None = None  # default: judge.sample_rate
    rubric: str | None = None  # a rubric YAML file; default: the built-in rubric


class JudgeSettings(_Section, frozen=True):
    enabled: bool = False
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key: str | None = None  # write ${OPENAI_API_KEY} to take it from the environment
    sample_rate: float = 0.05
    min_samples_per_window: int = 5
    sample_window_s: float = 3600.0
    always_sample: list[Literal["schema_invalid", "thumbs_down", "error"]] = msgspec.field(
        default_factory=lambda: ["schema_invalid", "thumbs_down"]
    )
    rubric: str | None = None
    rules: list[JudgeRuleSettings] = msgspec.field(default_factory=list)
    interval_s: float = 30.0
    batch_size: int = 20
    lookback_s: float = 7 * 86400.0
    concurrency: int = 4
    timeout_s: float = 60.0
    max_retries: int = 3
    claim_timeout_s: float = 600.0
    max_calls_per_day: int = 2000
    max_cost_per_day_usd: float = 5.0
    input_per_million_usd: float = 0.15
    output_per_million_usd: float = 0.60
    batch_cron: str | None = None  # e.g. "0 3 * * 1": every Monday 03:00 UTC
    batch_samples: int = 200
    baseline_auto_samples: int = 200
    max_drop: float = 0.10
    confidence: float = 0.95
    min_samples: int = 30


class DriftSettings(_Section, frozen=True):
    enabled: bool = True
    interval_s: float = 3600.0
    window_s: float = 86400.0
    reference_window_s: float | None = None  # rolling reference length; default window_s
    max_rows: int = 100_000
    min_samples: int = 30
    p_value: float = 0.05
    distance: float = 0.1


class MetricsSettings(_Section, frozen=True):
    max_label_values: int = 50


class Settings(_Section, frozen=True):
    upstream: UpstreamSettings = msgspec.field(default_factory=UpstreamSettings)
    proxy: ProxySettings = msgspec.field(default_factory=ProxySettings)
    admin: AdminSettings = msgspec.field(default_factory=AdminSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    request_log: RequestLogSettings = msgspec.field(default_factory=RequestLogSettings)
    spool: SpoolSettings = msgspec.field(default_factory=SpoolSettings)
    writer: WriterSettings = msgspec.field(default_factory=WriterSettings)
    compliance: ComplianceSettings = msgspec.field(default_factory=ComplianceSettings)
    cost: CostSettings = msgspec.field(default_factory=CostSettings)
    alerts: AlertSettings = msgspec.field(default_factory=AlertSettings)
    judge: JudgeSettings = msgspec.field(default_factory=JudgeSettings)
    drift: DriftSettings = msgspec.field(default_factory=DriftSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def __post_init__(self) -> None:
        _check_values(self)


_POSITIVE = {
    "upstream.connect_timeout_s",
    "upstream.read_timeout_s",
    "upstream.max_connections",
    "upstream.models_refresh_s",
    "proxy.max_body_bytes",
    "proxy.max_capture_bytes",
    "database.pool_size",
    "database.statement_timeout_s",
    "request_log.max_body_bytes",
    "spool.max_bytes",
    "spool.segment_bytes",
    "spool.fsync_interval_s",
    "writer.batch_size",
    "writer.idle_poll_s",
    "writer.linger_s",
    "writer.retry_initial_s",
    "writer.retry_max_s",
    "metrics.max_label_values",
    "alerts.interval_s",
    "judge.sample_window_s",
    "judge.interval_s",
    "judge.batch_size",
    "judge.lookback_s",
    "judge.concurrency",
    "judge.timeout_s",
    "judge.claim_timeout_s",
    "judge.batch_samples",
    "judge.min_samples",
    "drift.interval_s",
    "drift.window_s",
    "drift.max_rows",
    "drift.min_samples",
}


def _check_values(settings: Settings) -> None:
    for dotted in sorted(_POSITIVE):
        section, key = dotted.split(".")
        value = getattr(getattr(settings, section), key)
        if value <= 0:
            raise ConfigError(f"{dotted}: must be greater than 0, got {value!r}")
    for dotted in ("proxy.port", "admin.port"):
        section, key = dotted.split(".")
        port = getattr(getattr(settings, section), key)
        if not 0 <= port <= 65535:
            raise ConfigError(
                f"{dotted}: must be a TCP port 0-65535 (0 picks a free one), got {port}"
            )
    if not settings.upstream.url.startswith(("http://", "https://")):
        raise ConfigError(
            f"upstream.url: must start with http:// or https://, got {settings.upstream.url!r}"
        )
    cost = settings.cost
    if cost.gpu_hourly_usd < 0 or cost.gpu_count < 0 or (cost.gpu_monthly_usd or 0) < 0:
        raise ConfigError("cost: GPU prices and counts must not be negative")
    if cost.system_prompt_tokens < 0:
        raise ConfigError("cost.system_prompt_tokens: must not be negative")
    if settings.writer.workers < 0:
        raise ConfigError("writer.workers: must be 0 (build rows in-process) or more")
    if settings.spool.segment_bytes > settings.spool.max_bytes:
        raise ConfigError("spool.segment_bytes: must not exceed spool.max_bytes")
    _check_judge(settings.judge)
    drift = settings.drift
    if drift.reference_window_s is not None and drift.reference_window_s <= 0:
        raise ConfigError("drift.reference_window_s: must be greater than 0 (or left out)")
    if not 0 < drift.p_value < 1 or not 0 < drift.distance < 1:
        raise ConfigError("drift.p_value and drift.distance: must be between 0 and 1")
    database_url(settings.database.url)  # raises ConfigError on an unsupported scheme


def _check_judge(judge: JudgeSettings) -> None:
    rates = [("judge.sample_rate", judge.sample_rate)] + [
        (f"judge.rules[{rule.name}].sample_rate", rule.sample_rate)
        for rule in judge.rules
        if rule.sample_rate is not None
    ]
    for where, rate in rates:
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"{where}: a share between 0 and 1 (0.05 = 5%), got {rate}")
    if not 0.0 < judge.max_drop < 1.0:
        raise ConfigError(
            f"judge.max_drop: a share between 0 and 1 (0.10 = 10%), got {judge.max_drop}"
        )
    if not 0.5 <= judge.confidence < 1.0:
        raise ConfigError(
            f"judge.confidence: between 0.5 and 1 (e.g. 0.95), got {judge.confidence}"
        )
    for key in (
        "min_samples_per_window",
        "max_retries",
        "max_calls_per_day",
        "baseline_auto_samples",
    ):
        if getattr(judge, key) < 0:
            raise ConfigError(f"judge.{key}: must not be negative")
    if (
        min(judge.max_cost_per_day_usd, judge.input_per_million_usd, judge.output_per_million_usd)
        < 0
    ):
        raise ConfigError("judge: prices and the daily cost cap must not be negative")
    if judge.enabled and not judge.base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"judge.base_url: must start with http:// or https://, got {judge.base_url!r}"
        )


_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(value: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{where or 'config'}: environment variable {name} is not set "
                f"(export it, or write ${{{name}:-default}})"
            )

        return _ENV_PATTERN.sub(replace, value)
    if isinstance(value, dict):
        return {
            k: _interpolate(v, env, f"{where}.{k}" if where else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _explain(error: msgspec.ValidationError) -> str:
    """Turn msgspec's ``... - at `$.proxy.port``` into ``proxy.port: ...``."""
    text = str(error)
    match = re.search(r" - at `\$\.?(.*)`$", text)
    path = match.group(1) if match else ""
    reason = text[: match.start()] if match else text
    unknown = re.match(r"Object contains unknown field `([^`]+)`", reason)
    if unknown:
        key = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
        return f"{key}: unknown key (check the spelling; docs/configuration.md lists every key)"
    choices = _literal_choices(path)
    if choices and reason.startswith("Invalid enum value"):
        return f"{path}: {reason}; use one of {', '.join(choices)}"
    return f"{path or 'config'}: {reason}"


def _literal_choices(path: str) -> list[str]:
    """The allowed values of a ``Literal`` setting at a dotted path (empty if not a Literal)."""
    struct: Any = Settings
    annotation: Any = None
    for name in path.split("."):
        hints = typing.get_type_hints(struct) if isinstance(struct, type) else {}
        if name not in hints:
            return []
        annotation = struct = hints[name]
    if typing.get_origin(annotation) is Literal:
        return [str(value) for value in typing.get_args(annotation)]
    return []


def load_settings(
    config_path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Build the settings from the YAML file, the environment and explicit overrides.

    Precedence, lowest first: defaults, the file (``config_path`` or
    ``SIDECAR_CONFIG``), ``SIDECAR_UPSTREAM_URL`` / ``SIDECAR_DATABASE_URL``,
    then ``overrides`` (command-line flags), as ``{"section": {"key": value}}``.
    """
    env = os.environ if env is None else env
    path = config_path or env.get("SIDECAR_CONFIG")
    raw: dict[str, Any] = {}
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"config file {path}: cannot be read ({exc.strerror})") from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path}: not valid YAML ({exc})") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: the top level must be a mapping of sections")
        raw = _interpolate(loaded, env, "")
    for variable, (section, key) in {
        "SIDECAR_UPSTREAM_URL": ("upstream", "url"),
        "SIDECAR_DATABASE_URL": ("database", "url"),
    }.items():
        if env.get(variable):
            raw.setdefault(section, {})
            if not isinstance(raw[section], dict):
                raise ConfigError(f"{section}: must be a mapping")
            raw[section][key] = env[variable]
    for section, values in (overrides or {}).items():
        for key, value in values.items():
            if value is not None:
                raw.setdefault(section, {})[key] = value
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(exc)) from exc


def database_url(url: str) -> str:
    """Map a plain database URL to the async driver the sidecar uses.

    ``postgresql://...`` -> ``postgresql+asyncpg://...``;
    ``sqlite:///path`` -> ``sqlite+aiosqlite:///path``. URLs that already name
    one of these drivers pass unchanged.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(
            f"database.url: {url!r} is not a URL; use postgresql://user@host:5432/db "
            "or sqlite:///path/to/file.db"
        )
    base = scheme.split("+", 1)[0]
    if base in {"postgresql", "postgres"}:
        return f"postgresql+asyncpg://{rest}"
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    raise ConfigError(
        f"database.url: unsupported scheme {scheme!r}; use postgresql://... or sqlite:///..."
    )


def settings_keys() -> list[str]:
    """Every configuration key as ``section.key`` (the docs test checks each is documented)."""
    keys: list[str] = []
    for field in msgspec.structs.fields(Settings):
        section_type = field.type
        if isinstance(section_type, type) and issubclass(section_type, _Section):
            keys.extend(f"{field.name}.{sub.name}" for sub in msgspec.structs.fields(section_type))
        else:
            keys.append(field.name)
    return keys
