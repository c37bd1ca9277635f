"""One explicit settings object, built once from a YAML file and the environment.

Every key is optional; unknown keys and bad values raise :class:`ConfigError` naming the key
and the fix. ``${VAR}`` and ``${VAR:-default}`` inside string values are replaced from the
environment (for secrets). :mod:`.sections` holds the sections, :mod:`.checks` the value
checks, :mod:`.loading` the file, environment and flags (the only environment reader).
"""

from sidecar.settings.checks import database_url
from sidecar.settings.loading import PATH_KEYS, load_settings, settings_keys, sqlite_url_against
from sidecar.settings.sections import (
    DEFAULT_API_PRICES,
    DEFAULT_DATABASE_URL,
    DEFAULT_UPSTREAM_URL,
    HOURS_PER_MONTH,
    PRICES_AS_OF,
    AdminSettings,
    AlertRuleSettings,
    AlertSettings,
    ApiPrice,
    ComplianceSettings,
    CostSettings,
    DatabaseSettings,
    DriftSettings,
    EmbeddingSettings,
    JudgeRuleSettings,
    JudgeSettings,
    MetricsSettings,
    MiB,
    ProxySettings,
    RequestLogSettings,
    SchemaRuleSettings,
    Settings,
    SpoolSettings,
    UpstreamSettings,
    WriterSettings,
)

__all__ = [
    "DEFAULT_API_PRICES", "DEFAULT_DATABASE_URL", "DEFAULT_UPSTREAM_URL", "HOURS_PER_MONTH",
    "PATH_KEYS", "PRICES_AS_OF", "AdminSettings", "AlertRuleSettings", "AlertSettings",
    "ApiPrice", "ComplianceSettings", "CostSettings", "DatabaseSettings", "DriftSettings",
    "EmbeddingSettings", "JudgeRuleSettings", "JudgeSettings", "MetricsSettings", "MiB",
    "ProxySettings", "RequestLogSettings", "SchemaRuleSettings", "Settings", "SpoolSettings",
    "UpstreamSettings", "WriterSettings", "database_url", "load_settings", "settings_keys",
    "sqlite_url_against",
]  # fmt: skip
