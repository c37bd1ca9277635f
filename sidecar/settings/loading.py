"""Building :class:`Settings` from a YAML file, the environment and flags: ``${VAR}``
interpolation, relative paths against the file's directory, validation errors naming the key
(:mod:`.explain`).

This is the only module that reads environment variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from sidecar.errors import ConfigError
from sidecar.settings.explain import explain
from sidecar.settings.sections import Settings
from sidecar.settings.values import Section

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(
    value: Any, env: Mapping[str, str], where: str, tolerate: Callable[[str, str], bool]
) -> Any:
    """Replace ``${VAR}`` from ``env``. An unset variable is an error, unless ``tolerate(key,
    variable)`` says yes: then that key (or list item) is dropped, so it keeps its default."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise _UnsetVariable(
                name,
                f"{where or 'config'}: environment variable {name} is not set "
                f"(export it, or write ${{{name}:-default}})",
            )

        return _ENV_PATTERN.sub(replace, value)
    if isinstance(value, dict):
        resolved: dict[Any, Any] = {}
        for key, item in value.items():
            item_where = f"{where}.{key}" if where else str(key)
            try:
                resolved[key] = _interpolate(item, env, item_where, tolerate)
            except _UnsetVariable as exc:
                if not tolerate(item_where, exc.variable):
                    raise
        return resolved
    if isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_interpolate(item, env, f"{where}[{index}]", tolerate))
            except _UnsetVariable as exc:
                if not tolerate(f"{where}[{index}]", exc.variable):
                    raise
        return items
    return value


class _UnsetVariable(ConfigError):
    """A ``${VAR}`` with no default whose variable is not in the environment."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable


def _strict(_where: str, _variable: str) -> bool:
    return False


# Keys holding file or directory paths: relative values written in a configuration file are
# read against that file's directory, not the current one.
PATH_KEYS = ("spool.dir", "compliance.schemas_dir", "judge.rubric", "judge.rules[].rubric")


def _resolve_paths(raw: dict[str, Any], base_dir: Path) -> None:
    """Make the relative paths (and a relative SQLite file) in ``raw`` absolute against
    ``base_dir``, in place; values of the wrong type are left for validation to name."""

    def resolved(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).is_absolute():
            return str(base_dir / value)
        return value

    for dotted in PATH_KEYS:
        section_name, key = dotted.split(".", 1)
        section = raw.get(section_name)
        if not isinstance(section, dict):
            continue
        if key.endswith("[].rubric"):
            rules = section.get("rules")
            for rule in rules if isinstance(rules, list) else []:
                if isinstance(rule, dict) and "rubric" in rule:
                    rule["rubric"] = resolved(rule["rubric"])
        elif key in section:
            section[key] = resolved(section[key])
    database = raw.get("database")
    if isinstance(database, dict) and isinstance(database.get("url"), str):
        database["url"] = sqlite_url_against(database["url"], base_dir)


def sqlite_url_against(url: str, base_dir: Path) -> str:
    """``sqlite:///rel/x.db`` read against ``base_dir``; other URLs unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] != "sqlite" or not rest.startswith("/"):
        return url
    path, query_sep, query = rest[1:].partition("?")
    if not path or path == ":memory:" or Path(path).is_absolute() or "mode=memory" in query:
        return url
    return f"{scheme}:///{base_dir / path}{query_sep}{query}"


def load_settings(
    config_path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    sections_used: Collection[str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Settings:
    """Build the settings from the YAML file, the environment and explicit overrides.

    Precedence, lowest first: defaults, the file (``config_path`` or
    ``SIDECAR_CONFIG``), ``SIDECAR_UPSTREAM_URL`` / ``SIDECAR_DATABASE_URL``,
    then ``overrides`` (command-line flags), as ``{"section": {"key": value}}``.

    Relative paths written in the file (:data:`PATH_KEYS`, a ``sqlite:///`` file) are read
    against the file's directory. ``sections_used`` (read-only commands): an unset ``${VAR}``
    outside these sections leaves its key at the default and is reported to ``warn``
    instead of stopping.
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
        raw = _interpolate(loaded, env, "", _tolerance(sections_used, warn))
        _resolve_paths(raw, Path(path).resolve().parent)
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
        raise ConfigError(explain(exc, raw)) from exc


def _tolerance(
    sections_used: Collection[str] | None, warn: Callable[[str], None] | None
) -> Callable[[str, str], bool]:
    if sections_used is None:
        return _strict

    def tolerate(where: str, variable: str) -> bool:
        section = re.split(r"[.\[]", where, maxsplit=1)[0]
        if section in sections_used:
            return False
        if warn is not None:
            warn(
                f"{where}: environment variable {variable} is not set; left at its default "
                f"(this command does not use the {section} section; serve would refuse it)"
            )
        return True

    return tolerate


def settings_keys() -> list[str]:
    """Every configuration key as ``section.key`` (the docs test checks each is documented)."""
    keys: list[str] = []
    for field in msgspec.structs.fields(Settings):
        section_type = field.type
        if isinstance(section_type, type) and issubclass(section_type, Section):
            keys.extend(f"{field.name}.{sub.name}" for sub in msgspec.structs.fields(section_type))
        else:
            keys.append(field.name)
    return keys
