"""Checks of values the types cannot express: limits, ports, URLs, shares (each error names the
key and the fix)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sidecar.errors import ConfigError

if TYPE_CHECKING:
    from sidecar.settings.sections import JudgeSettings, Settings

_POSITIVE = {
    "upstream.connect_timeout_s",
    "upstream.read_timeout_s",
    "upstream.max_connections",
    "upstream.pool_timeout_s",
    "upstream.models_refresh_s",
    "proxy.max_body_bytes",
    "proxy.max_capture_bytes",
    "proxy.head_timeout_s",
    "proxy.body_timeout_s",
    "proxy.write_timeout_s",
    "proxy.max_client_connections",
    "proxy.max_buffered_response_bytes",
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


def check_values(settings: Settings) -> None:
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
    if settings.writer.record_deadline_s <= 0:
        raise ConfigError("writer.record_deadline_s: must be greater than 0")
    if settings.spool.segment_bytes > settings.spool.max_bytes:
        raise ConfigError("spool.segment_bytes: must not exceed spool.max_bytes")
    _check_judge(settings.judge)
    drift = settings.drift
    if drift.reference_window_s is not None and drift.reference_window_s <= 0:
        raise ConfigError("drift.reference_window_s: must be greater than 0 (or left out)")
    if not 0 < drift.p_value < 1 or not 0 < drift.distance < 1:
        raise ConfigError("drift.p_value and drift.distance: must be between 0 and 1")
    if drift.embeddings.enabled and drift.embeddings.model == "minilm":
        raise ConfigError(
            "drift.embeddings.model: minilm is not implemented yet; use static (docs/drift.md)"
        )
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
