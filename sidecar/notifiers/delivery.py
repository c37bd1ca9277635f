"""Notifiers (Protocol + registry) and outbox delivery with retry.

Slack: 200 with body ``ok`` is success; 429 waits ``Retry-After``; 5xx, timeouts and connection
errors back off exponentially; 400/403/404/410 (``invalid_payload``, ``no_service``,
``channel_is_archived``...) are permanent and recorded, never retried. Generic webhooks follow
Alertmanager's rule: 2xx success, 5xx (and 429) retried, anything else permanent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import aiohttp

from sidecar.logs import neutral
from sidecar.notifiers.payloads import AlertNotice, alertmanager_body, log_line, slack_message

logger = logging.getLogger("sidecar.notifiers")

MAX_BACKOFF_S = 300.0
SEND_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Delivery:
    sent: bool
    error: str | None = None
    retry_after_s: float | None = None  # None with sent=False: permanent failure


class Notifier(Protocol):
    @property
    def name(self) -> str: ...

    def payload(self, notice: AlertNotice) -> dict[str, Any]: ...

    async def send(
        self, session: aiohttp.ClientSession, payload: dict[str, Any], attempts: int
    ) -> Delivery: ...


def backoff_s(attempts: int) -> float:
    return float(min(MAX_BACKOFF_S, 2 ** max(attempts, 0)))


def _retry_after(response: aiohttp.ClientResponse, attempts: int) -> float:
    header = response.headers.get("Retry-After", "")
    return float(header) if header.isdigit() else backoff_s(attempts)


async def _send(
    session: aiohttp.ClientSession,
    url: str,
    payload: dict[str, Any],
    attempts: int,
    judge: Callable[[int, str, float], Delivery],
) -> Delivery:
    """POST ``payload``; network failures retry with backoff, answers go to ``judge``
    (status, body, seconds to wait before a retry: Retry-After or the backoff)."""
    try:
        async with asyncio.timeout(SEND_TIMEOUT_S), session.post(url, json=payload) as response:
            body = (await response.text())[:300]
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Delivery(False, f"{type(exc).__name__}: {exc}", backoff_s(attempts))
    return judge(response.status, body, _retry_after(response, attempts))


@dataclass(frozen=True)
class SlackNotifier:
    name: str
    url: str

    def payload(self, notice: AlertNotice) -> dict[str, Any]:
        return slack_message(notice)

    async def send(
        self, session: aiohttp.ClientSession, payload: dict[str, Any], attempts: int
    ) -> Delivery:
        return await _send(session, self.url, payload, attempts, self._judge)

    @staticmethod
    def _judge(status: int, body: str, retry_s: float) -> Delivery:
        if status == 200 and body.strip() == "ok":
            return Delivery(True)
        if status == 429 or status >= 500:
            return Delivery(False, f"Slack answered {status} {body}", retry_s)
        return Delivery(False, f"Slack refused it for good: {status} {body}")


@dataclass(frozen=True)
class WebhookNotifier:
    """A generic webhook receiving Alertmanager's v4 body."""

    name: str
    url: str

    def payload(self, notice: AlertNotice) -> dict[str, Any]:
        return alertmanager_body([notice])

    async def send(
        self, session: aiohttp.ClientSession, payload: dict[str, Any], attempts: int
    ) -> Delivery:
        return await _send(session, self.url, payload, attempts, self._judge)

    @staticmethod
    def _judge(status: int, body: str, retry_s: float) -> Delivery:
        if 200 <= status < 300:
            return Delivery(True)
        if status == 429 or status >= 500:
            return Delivery(False, f"webhook answered {status} {body}", retry_s)
        return Delivery(False, f"webhook refused it for good: {status} {body}")


@dataclass(frozen=True)
class LogNotifier:
    name: str = "log"

    def payload(self, notice: AlertNotice) -> dict[str, Any]:
        return {"text": log_line(notice)}

    async def send(
        self, session: aiohttp.ClientSession, payload: dict[str, Any], attempts: int
    ) -> Delivery:
        # neutral() again: an outbox entry written by an older version holds raw text.
        logger.warning("ALERT %s", neutral(str(payload.get("text", ""))))
        return Delivery(True)


def too_old(created_at: datetime, now: datetime, max_age_s: float) -> bool:
    return now - created_at > timedelta(seconds=max_age_s)
