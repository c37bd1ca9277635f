"""Format compliance as the writer uses it: settings -> registry + rules -> a check per row."""

from __future__ import annotations

import logging
from pathlib import Path

from sidecar.errors import ConfigError
from sidecar.records import SchemaVerdict
from sidecar.settings import ComplianceSettings
from sidecar.validators.registry import SchemaRegistry
from sidecar.validators.selection import Exchanged, SchemaRule, applies, check, schema_name

logger = logging.getLogger("sidecar.compliance")


class Compliance:
    """Compiled once at start (and on reload); :meth:`check` is pure over one exchange."""

    def __init__(
        self, settings: ComplianceSettings, *, base_dir: Path | None = None, reload: bool = False
    ) -> None:
        """``reload``: the directory must exist (at start a missing one means no schemas)."""
        directory = Path(settings.schemas_dir)
        if base_dir is not None and not directory.is_absolute():
            directory = base_dir / directory
        self.directory = directory
        self.registry = SchemaRegistry.load(directory, missing_ok=not reload)
        self.rules = [
            SchemaRule(rule.schema, rule.scope, rule.allow_fenced) for rule in settings.rules
        ]
        self.allow_fenced = settings.allow_fenced
        self.enabled = settings.enabled
        missing = sorted({rule.schema for rule in self.rules} - set(self.registry.names()))
        if missing:
            raise ConfigError(
                f"compliance.rules: schema {missing[0]!r} is not in {directory} "
                f"(known: {', '.join(self.registry.names()) or 'none'})"
            )

    def applies(self, exchanged: Exchanged) -> bool:
        return applies(exchanged, self.rules)

    def schema_name(self, exchanged: Exchanged) -> str | None:
        return schema_name(exchanged, self.rules)

    def check(self, exchanged: Exchanged) -> SchemaVerdict | None:
        if not self.enabled:
            return None
        try:
            return check(exchanged, self.registry, self.rules, allow_fenced=self.allow_fenced)
        except Exception:  # a validator bug must not stop the log
            logger.exception("schema check failed for %s", exchanged.path)
            return None
