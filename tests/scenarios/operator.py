"""What an operator sees of a running sidecar: the notifications that reached the sinks, the
numbers on ``/metrics`` and the CLI's answers. Scenario tests assert on these only, never on
the sidecar's internal state.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sidecar.testing.servers import RunningServer, start_server
from sidecar.testing.webhook_sink import WebhookSink
from tests.helpers import wait_for

SLACK_PATH, WEBHOOK_PATH = "/slack", "/alertmanager"


@dataclass
class Sinks:
    """A Slack-shaped and an Alertmanager-shaped receiver on one server on port 0."""

    app: WebhookSink = field(default_factory=WebhookSink)
    server: RunningServer | None = None

    @property
    def alert_settings(self) -> dict[str, Any]:
        assert self.server is not None
        return {"slack_webhook_url": f"{self.server.url}{SLACK_PATH}",
                "webhook_urls": [f"{self.server.url}{WEBHOOK_PATH}"]}  # fmt: skip

    def slack(self) -> list[tuple[str, str]]:
        """(state, text) of every Slack message, in arrival order: ("FIRING", "[FIRING] ...")."""
        found = []
        for message in list(self.app.received[SLACK_PATH]):
            text = message["text"]
            found.append((text[1 : text.index("]")], text))
        return found

    def webhook(self) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
        """(status, alertname, labels) of every alert in every Alertmanager-shaped POST."""
        found = []
        for body in list(self.app.received[WEBHOOK_PATH]):
            for alert in body["alerts"]:
                labels = dict(alert["labels"])
                name = labels.pop("alertname")
                labels.pop("severity", None)
                found.append((alert["status"], name, tuple(sorted(labels.items()))))
        return found

    def webhook_counts(self) -> Counter[tuple[str, str, tuple[tuple[str, str], ...]]]:
        return Counter(self.webhook())


def start_sinks() -> Sinks:
    sinks = Sinks()
    sinks.server = start_server(sinks.app)
    return sinks


def scrape(admin_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample on ``/metrics``: (name, sorted labels) -> value."""
    text = httpx.get(f"{admin_url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def alert_rounds(admin_url: str) -> float:
    return scrape(admin_url).get(("sidecar_alert_rounds_total", (("result", "ok"),)), 0.0)


def wait_rounds(admin_urls: list[str], rounds: int, also: Callable[[], object] | None = None,
                timeout_s: float = 60.0) -> None:  # fmt: skip
    """Wait until every sidecar in ``admin_urls`` completed ``rounds`` more alert rounds, calling
    ``also`` (e.g. more traffic) in between."""
    start = [alert_rounds(url) for url in admin_urls]

    def done() -> bool:
        if also is not None:
            also()
        return all(alert_rounds(url) >= first + rounds
                   for url, first in zip(admin_urls, start, strict=True))  # fmt: skip

    wait_for(done, timeout_s=timeout_s, what=f"{rounds} alert rounds")


@dataclass
class Traffic:
    """Client traffic in the background: ``mode`` picks what each request looks like and can be
    switched while it runs (``breach`` -> ``recover``); every answered request id is kept.

    ``shape(mode, index)`` gets ``count + worker``: at any moment the workers hold consecutive
    indexes, so a pattern over indexes is evenly mixed from the first requests on (no warm-up
    in which, say, every worker's first request is the slow one)."""

    proxy_url: str
    shape: Callable[[str, int], tuple[dict[str, Any], dict[str, str], str | None]]
    workers: int = 16
    pause_s: float = 0.0  # per worker, between requests
    mode: str = "breach"
    answered: list[tuple[str, str]] = field(default_factory=list)  # (mode, X-Request-Id)
    _stop: threading.Event = field(default_factory=threading.Event)
    _pool: ThreadPoolExecutor | None = None

    def start(self) -> Traffic:
        self._pool = ThreadPoolExecutor(self.workers)
        for worker in range(self.workers):
            self._pool.submit(self._run, worker)
        return self

    def _run(self, worker: int) -> None:
        count = 0
        with httpx.Client(base_url=self.proxy_url, timeout=30) as client:
            while not self._stop.is_set():
                mode = self.mode
                body, headers, rating = self.shape(mode, count + worker)
                count += 1
                response = client.post("/v1/chat/completions", json=body, headers=headers)
                request_id = response.headers.get("x-request-id", "")
                self.answered.append((mode, request_id))
                if rating is not None:
                    client.post("/sidecar/v1/feedback",
                                json={"request_id": request_id, "rating": rating})  # fmt: skip
                if self.pause_s:
                    time.sleep(self.pause_s)

    def stop(self) -> None:
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


@contextlib.contextmanager
def running(traffic: Traffic) -> Iterator[Traffic]:
    traffic.start()
    try:
        yield traffic
    finally:
        traffic.stop()
