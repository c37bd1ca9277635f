"""What a sidecar checks before it starts: ``serve`` and ``check-config`` both run :func:`preflight`.

Everything read from disk at start (schema files, rubric files), every reference between parts
of the configuration (alert rules, schema rules) and every notifier URL is checked here, so
``sidecar check-config`` refuses exactly what ``sidecar serve`` would refuse. Problems that do not
stop the start (a schema directory that is missing or empty, a judge without a key) come back
as warnings naming the absolute path or the key.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sidecar.alerts.readers import RuleDefinition, rule_definitions
from sidecar.errors import ConfigError
from sidecar.judge.job import Rubrics
from sidecar.judge.rubric import load_rubric
from sidecar.settings import AlertSettings, JudgeSettings, Settings
from sidecar.validators.compliance import Compliance


@dataclass(frozen=True, slots=True)
class Preflight:
    """What the configuration picked up, checked."""

    schemas_dir: Path  # absolute
    schemas: tuple[str, ...]
    alert_rules: list[RuleDefinition]
    rubrics: Rubrics | None  # None: the judge is off
    notifiers: tuple[str, ...]  # kinds, one per configured notifier: slack, webhook, log
    warnings: tuple[str, ...]


def preflight(settings: Settings) -> Preflight:
    """Check every part of ``settings`` that ``serve`` uses at start; raises :class:`ConfigError`
    naming the key and the fix."""
    warnings: list[str] = []
    schemas_dir = Path(settings.compliance.schemas_dir).resolve()
    schemas = tuple(Compliance(settings.compliance).registry.names())
    if settings.compliance.enabled and not schemas:
        state = "has no *.json schema files" if schemas_dir.is_dir() else "does not exist"
        where = ("relative paths in a configuration file are read against its directory"
                 if Path(settings.compliance.schemas_dir).is_absolute()
                 else "the default or an environment value, read against the current "
                      "directory; a path written in the configuration file is read against "
                      "the file's directory")  # fmt: skip
        warnings.append(
            f"compliance.schemas_dir: {schemas_dir} {state}; requests naming a schema "
            f"(X-Sidecar-Schema) will get schema_error ({where})"
        )
    alert_rules = rule_definitions(settings.alerts.rules)
    notifiers = _check_notifiers(settings.alerts)
    rubrics = None
    if settings.judge.enabled:
        _check_rubric_files(settings.judge)
        rubrics = Rubrics(settings.judge)
        if settings.judge.api_key is None and "api.openai.com" in settings.judge.base_url:
            warnings.append(
                "judge.api_key: not set, and judge.base_url is OpenAI's API: every judge call "
                "will be refused (set judge.api_key: ${OPENAI_API_KEY})"
            )
    return Preflight(schemas_dir, schemas, alert_rules, rubrics, notifiers, tuple(warnings))


def _check_rubric_files(judge: JudgeSettings) -> None:
    files = [("judge.rubric", judge.rubric)] + [
        (f"judge.rules[{rule.name}].rubric", rule.rubric) for rule in judge.rules
    ]
    for key, path in files:
        if path is None:
            continue
        try:
            load_rubric(path)
        except ConfigError as exc:
            raise ConfigError(f"{key}: {exc}") from exc


def _check_notifiers(alerts: AlertSettings) -> tuple[str, ...]:
    urls = [("alerts.slack_webhook_url", "slack", alerts.slack_webhook_url)] + [
        (f"alerts.webhook_urls[{index}]", "webhook", url)
        for index, url in enumerate(alerts.webhook_urls)
    ]
    kinds = []
    for key, kind, url in urls:
        if url is None:
            continue
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConfigError(f"{key}: {url!r} is not an http:// or https:// URL with a host")
        kinds.append(kind)
    if alerts.log:
        kinds.append("log")
    return tuple(kinds)


def without_password(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and the OK line)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def summary(settings: Settings, checked: Preflight) -> str:
    """One line saying what the configuration picked up."""
    judge = settings.judge
    judge_text = f"on ({judge.model} at {judge.base_url})" if checked.rubrics else "off"
    counted = Counter(checked.notifiers)
    notifiers = ", ".join(f"{count} {kind}" for kind, count in counted.items()) or "none"
    schemas = f"{len(checked.schemas)} from {checked.schemas_dir}"
    if checked.schemas:
        schemas += f" ({', '.join(checked.schemas)})"
    return (
        f"upstream {without_password(settings.upstream.url)}, proxy :{settings.proxy.port}, "
        f"admin :{settings.admin.port}, database {without_password(settings.database.url)}; "
        f"schemas: {schemas}; judge: {judge_text}; "
        f"notifiers: {len(checked.notifiers)} ({notifiers}); "
        f"alert rules: {len(checked.alert_rules)}"
    )
