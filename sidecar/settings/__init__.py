"""One explicit settings object, built once from a YAML file and the environment.

Every key is optional; unknown keys and bad values raise :class:`ConfigError` naming the key
and the fix. ``${VAR}`` and ``${VAR:-default}`` inside string values are replaced from the
environment (for secrets). :mod:`.sections` holds the root object and the serving sections,
:mod:`.recording`, :mod:`.monitoring` and :mod:`.judging` the others, :mod:`.values` the
constrained types, :mod:`.checks` the checks that span keys, :mod:`.loading` the file,
environment and flags (the only environment reader), :mod:`.explain` the error messages and
:mod:`.reference` the generated docs/configuration.md.
"""

from sidecar.settings.checks import DATABASE_SCHEMES, check_database_url
from sidecar.settings.judging import (
    HOURS_PER_MONTH,
    ApiPrice,
    CostSettings,
    JudgeRuleSettings,
    JudgeSettings,
)
from sidecar.settings.loading import PATH_KEYS, load_settings, settings_keys, sqlite_url_against
from sidecar.settings.monitoring import (
    AlertRuleSettings,
    AlertSettings,
    ComplianceSettings,
    DriftSettings,
    EmbeddingSettings,
    SchemaRuleSettings,
)
from sidecar.settings.recording import (
    DEFAULT_DATABASE_URL,
    DatabaseSettings,
    RequestLogSettings,
    SpoolSettings,
    WriterSettings,
)
from sidecar.settings.sections import (
    DEFAULT_UPSTREAM_URL,
    AdminSettings,
    MetricsSettings,
    ProxySettings,
    Settings,
    UpstreamSettings,
)
from sidecar.settings.values import MiB

__all__ = [
    "DATABASE_SCHEMES", "DEFAULT_DATABASE_URL", "DEFAULT_UPSTREAM_URL", "HOURS_PER_MONTH",
    "PATH_KEYS", "AdminSettings", "AlertRuleSettings", "AlertSettings", "ApiPrice",
    "ComplianceSettings", "CostSettings", "DatabaseSettings", "DriftSettings",
    "EmbeddingSettings", "JudgeRuleSettings", "JudgeSettings", "MetricsSettings", "MiB",
    "ProxySettings", "RequestLogSettings", "SchemaRuleSettings", "Settings", "SpoolSettings",
    "UpstreamSettings", "WriterSettings", "check_database_url", "load_settings", "settings_keys",
    "sqlite_url_against",
]  # fmt: skip
