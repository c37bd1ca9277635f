"""The judge seam: the ``openai`` SDK against any OpenAI-compatible endpoint.

Our own retry loop (the SDK's is off) so that waits are injectable in tests, ``Retry-After`` on a
429 is honoured exactly, and every attempt is counted against the daily budget. SDK exceptions
become :class:`JudgeUnavailable` / :class:`JudgeRejected` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import openai

from sidecar.errors import JudgeRejected, JudgeUnavailable
from sidecar.settings import JudgeSettings

Sleep = Callable[[float], Awaitable[None]]
MAX_WAIT_S = 120.0


@dataclass(frozen=True, slots=True)
class JudgeReply:
    text: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    attempts: int


def retry_after_s(headers: Any, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date), if any."""
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now)


class JudgeClient:
    """Calls the judge model with a concurrency limit, a timeout and backed-off retries."""

    def __init__(self, settings: JudgeSettings, *, sleep: Sleep = asyncio.sleep) -> None:
        self.settings = settings
        self.sleep = sleep
        self.client = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key or "no-key",
            timeout=settings.timeout_s,
            max_retries=0,
        )
        self._slots = asyncio.Semaphore(settings.concurrency)

    async def close(self) -> None:
        await self.client.close()

    async def complete(
        self, messages: list[dict[str, str]], response_format: dict[str, Any]
    ) -> JudgeReply:
        attempts = 0
        while True:
            attempts += 1
            try:
                async with self._slots:
                    started = time.perf_counter()
                    completion = await self.client.chat.completions.create(  # type: ignore[call-overload]
                        model=self.settings.model,
                        messages=messages,
                        response_format=response_format,
                        temperature=0,
                    )
                    latency_ms = (time.perf_counter() - started) * 1000
            except openai.APIStatusError as exc:
                if exc.status_code != 429 and exc.status_code < 500:
                    raise JudgeRejected(
                        f"judge {self.settings.model} at {self.settings.base_url} refused the "
                        f"request ({exc.status_code}): {exc.message}",
                        attempts=attempts,
                    ) from exc
                wait = retry_after_s(exc.response.headers, time.time())
                failure = f"HTTP {exc.status_code}"
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                wait, failure = None, type(exc).__name__
            else:
                usage = completion.usage
                text = completion.choices[0].message.content if completion.choices else None
                return JudgeReply(
                    text,
                    usage.prompt_tokens if usage else 0,
                    usage.completion_tokens if usage else 0,
                    latency_ms,
                    attempts,
                )
            if attempts > self.settings.max_retries:
                raise JudgeUnavailable(
                    f"judge at {self.settings.base_url} failed {attempts} times (last: {failure})",
                    attempts=attempts,
                )
            await self.sleep(
                min(MAX_WAIT_S, wait if wait is not None else 0.5 * 2 ** (attempts - 1))
            )
