"""Which served names are LoRA adapters, learned from the upstream's ``/v1/models``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sidecar.errors import UpstreamError
from sidecar.proxy.upstream import UpstreamClient
from sidecar.records import ModelIdentity
from sidecar.wire.identity import identify_in

logger = logging.getLogger("sidecar.catalog")
MIN_REFRESH_INTERVAL_S = 1.0


class ModelCatalog:
    """Served model names -> parent (``None`` for a base model), refreshed in the background."""

    def __init__(self) -> None:
        self._parents: dict[str, str | None] = {}
        self.healthy = False
        self.last_error: str | None = None  # why the last check failed

    def update(self, models_document: Any) -> None:
        """Replace the catalog with the cards of a ``/v1/models`` response body."""
        data = models_document.get("data") if isinstance(models_document, dict) else None
        if not isinstance(data, list):
            return
        parents: dict[str, str | None] = {}
        for card in data:
            if isinstance(card, dict) and isinstance(card.get("id"), str):
                parent = card.get("parent")
                parents[card["id"]] = parent if isinstance(parent, str) else None
        # Names no longer served are kept: rows of requests made before an unload (still in the
        # spool) must resolve to the adapter that answered them.
        self._parents = {**self._parents, **parents}

    def identify(self, model: str | None) -> ModelIdentity:
        """Base model and adapter for a requested model name (unknown names stay unresolved)."""
        return identify_in(self._parents, model)

    def known(self) -> dict[str, str | None]:
        return dict(self._parents)

    async def refresh(self, upstream: UpstreamClient) -> bool:
        try:
            self.update(await upstream.get_json("/v1/models"))
        except (UpstreamError, ValueError) as exc:
            if self.healthy:
                logger.warning("cannot refresh the model list from the upstream: %s", exc)
            self.healthy = False
            self.last_error = str(exc)
            return False
        if not self.healthy and self.last_error is not None:
            logger.info("the upstream answers again (GET /v1/models)")
        self.healthy = True
        self.last_error = None
        return True

    async def run(
        self, upstream: UpstreamClient, interval_s: float, wake: asyncio.Event,
        on_health: Callable[[bool], None] | None = None,
    ) -> None:  # fmt: skip
        """Refresh every ``interval_s``, or soon when ``wake`` is set (an adapter was loaded, or
        an unknown name was seen), but never more than once per ``MIN_REFRESH_INTERVAL_S``.
        ``on_health`` hears each check's outcome (the ``sidecar_upstream_up`` gauge)."""
        while True:
            healthy = await self.refresh(upstream)
            if on_health is not None:
                on_health(healthy)
            await asyncio.sleep(min(MIN_REFRESH_INTERVAL_S, interval_s))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    wake.wait(), interval_s if self.healthy else min(interval_s, 2.0)
                )
            wake.clear()
