"""Which traffic a configured rule applies to: a schema rule, a judge rule."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ScopeMatch:
    """Model, adapter, schema and path a rule is for; a field left ``None`` matches anything.

    A schema rule names model / adapter / path (its schema is what it picks, not what it
    matches); a judge rule names model / adapter / schema. What the caller leaves out is
    ``None``: a scope naming that field does not match it.
    """

    model: str | None = None
    adapter: str | None = None
    schema: str | None = None
    path: str | None = None

    def matches(
        self,
        model: str | None,
        adapter: str | None,
        *,
        schema: str | None = None,
        path: str | None = None,
    ) -> bool:
        return (
            (self.model is None or self.model == model)
            and (self.adapter is None or self.adapter == adapter)
            and (self.schema is None or self.schema == schema)
            and (self.path is None or self.path == path)
        )
