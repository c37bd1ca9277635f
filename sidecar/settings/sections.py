"""The settings' sections: one frozen struct per YAML section, every key optional with a safe
default (docs/configuration.md describes each)."""

from __future__ import annotations

from typing import Literal

import msgspec

from sidecar.settings.checks import check_values

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
    pool_timeout_s: float = 10.0
    models_refresh_s: float = 30.0


class ProxySettings(_Section, frozen=True):
    host: str = "0.0.0.0"
    port: int = 8080
    max_body_bytes: int = 32 * MiB
    inject_stream_usage: bool = True
    max_capture_bytes: int = 16 * MiB
    head_timeout_s: float = 30.0
    body_timeout_s: float = 60.0
    write_timeout_s: float = 60.0
    max_client_connections: int = 4096
    max_buffered_response_bytes: int = 4 * MiB


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
    record_deadline_s: float = 2.0  # a worker building one row longer than this is replaced


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
    keep_firing_for_s: float | None = None
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


class EmbeddingSettings(_Section, frozen=True):
    """Sentence vectors of prompts and outputs for semantic drift (docs/drift.md)."""

    enabled: bool = False
    model: Literal["static", "minilm"] = "static"  # minilm: the embeddings-minilm extra
    fields: list[Literal["prompt", "output"]] = msgspec.field(
        default_factory=lambda: ["prompt", "output"]
    )


class DriftSettings(_Section, frozen=True):
    enabled: bool = True
    interval_s: float = 3600.0
    window_s: float = 86400.0
    reference_window_s: float | None = None  # rolling reference length; default window_s
    max_rows: int = 100_000
    min_samples: int = 30
    p_value: float = 0.05
    distance: float = 0.1
    embeddings: EmbeddingSettings = msgspec.field(default_factory=EmbeddingSettings)


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
        check_values(self)
