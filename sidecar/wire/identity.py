"""Model identity: which base model and adapter a served name stands for."""

from __future__ import annotations

from collections.abc import Mapping

from sidecar.records import ModelIdentity


def identify_in(parents: Mapping[str, str | None], model: str | None) -> ModelIdentity:
    """Base model and adapter for ``model`` given served name -> parent (None for a base)."""
    if model is None or model not in parents:
        return ModelIdentity(None, None)
    parent = parents[model]
    return ModelIdentity(parent, model) if parent else ModelIdentity(model, None)
