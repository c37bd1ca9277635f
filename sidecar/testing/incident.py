"""An incident in compressed time, played against a running sidecar: ``sidecar demo --incident``
and tests/scenarios/test_incident.py run this same script.

Two LoRA adapters of the fake vLLM take steady traffic (``support`` and ``legal``, every answer
checked against a schema). Then, one after the other: ``support`` slows down (its latency alert
fires, for ``adapter=support`` only) and recovers; ``legal`` answers out of format (its
compliance alert fires, for ``adapter=legal`` only) and recovers; ``support``'s questions move
to another topic and template, ``sidecar drift run`` names it (the drift alert fires for
``model=support adapter=support``), the topic comes back and the next run clears it. Each phase
waits for what an operator would see (a notification, alert rounds on ``/metrics``), never on
the sidecar's internals.

Margins are wide on purpose: 600 ms answers against a 250 ms threshold on traffic that answers
in milliseconds, 0% valid against an 80% threshold, topic words that are either all shared or
none (every question uses its whole vocabulary, so the word distributions of two windows of one
topic are identical, not merely close), and ``min_samples`` so a reading waits for enough traffic.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sidecar.alerts.readers import DEFAULT_RULES
from sidecar.testing.topics import SUPPORT, TRAVEL

ADAPTERS = ("support", "legal")
SCHEMA_NAME = "ticket"
SCHEMA = '{"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}'
VALID_OUTPUT, INVALID_OUTPUT = '{"ok": true}', "Sure! Here is what I found: it looks fine."
LEGAL = ["contract", "clause", "liability", "warranty", "indemnity", "termination", "notice",
         "breach", "party", "agreement"]  # fmt: skip
PROMPTS = {
    "support": ("You are a support agent.", SUPPORT),
    "travel": ("You are a travel assistant. Be brief.", TRAVEL),
    "legal": ("You review contracts.", LEGAL),
}

ALERT_WINDOW_S = 4.0
ALERT_MIN_SAMPLES = 8
SLOW_MS, LATENCY_THRESHOLD_MS = 600, 250.0
COMPLIANCE_THRESHOLD_PCT = 80.0
DRIFT_WINDOW_S, DRIFT_MIN_SAMPLES = 5.0, 10
HOLD_ROUNDS = 10  # each state is held this many alert rounds: a repeat would show
SWITCH_MARGIN_S = 1.0  # requests sent just before a switch stay out of the next drift window

BUILT_IN_RULES = tuple(definition.spec.name for definition in DEFAULT_RULES)
LATENCY_RULE, COMPLIANCE_RULE, DRIFT_RULE = (
    "adapter_latency_p95",
    "adapter_compliance",
    "topic_drift",
)
RULES: list[dict[str, Any]] = [
    *({"name": name, "enabled": False} for name in BUILT_IN_RULES),
    {"name": LATENCY_RULE, "kind": "latency", "threshold": LATENCY_THRESHOLD_MS,
     "comparison": "above", "window_s": ALERT_WINDOW_S, "for_s": 0,
     "min_samples": ALERT_MIN_SAMPLES, "group_by": ["adapter"]},
    {"name": COMPLIANCE_RULE, "kind": "compliance_rate", "threshold": COMPLIANCE_THRESHOLD_PCT,
     "comparison": "below", "window_s": ALERT_WINDOW_S, "for_s": 0,
     "min_samples": ALERT_MIN_SAMPLES, "group_by": ["adapter"]},
    # Only the words count: latency and format move in the other phases, not the topic.
    {"name": DRIFT_RULE, "kind": "drift", "threshold": 50.0, "comparison": "above",
     "window_s": 3600, "for_s": 0, "min_samples": 1, "features": ["user_words"],
     "group_by": ["model", "adapter"]},
]  # fmt: skip

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Notice:
    """One alert as a receiver saw it: ``firing`` or ``resolved``, the rule, its labels."""

    status: str
    rule: str
    labels: Labels

    def __str__(self) -> str:
        scope = " ".join(f"{label}={value}" for label, value in self.labels)
        return f"{self.status.upper():<8} {self.rule} {scope}"


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    story: str
    modes: dict[str, str]  # adapter -> what its traffic looks like (see ``request``)
    expect: Notice | None = None  # what this phase must make a receiver see
    drift_run: bool = False  # wait for a drift window of this phase's traffic, then run it


SUPPORT_SCOPE, LEGAL_SCOPE = (("adapter", "support"),), (("adapter", "legal"),)
DRIFT_SCOPE = (("adapter", "support"), ("model", "support"))  # model: as requested
NORMAL = {"support": "support", "legal": "legal"}
PHASES = (
    Phase("normal", "both adapters answer fast and in format (pinned as the drift baseline)",
          NORMAL),
    Phase("latency spike", f"support answers in {SLOW_MS} ms",
          {**NORMAL, "support": "support-slow"}, Notice("firing", LATENCY_RULE, SUPPORT_SCOPE)),
    Phase("latency recovers", "support is fast again",
          NORMAL, Notice("resolved", LATENCY_RULE, SUPPORT_SCOPE)),
    Phase("format regression", "legal answers in prose, not the schema",
          {**NORMAL, "legal": "legal-invalid"}, Notice("firing", COMPLIANCE_RULE, LEGAL_SCOPE)),
    Phase("format recovers", "legal answers in format again",
          NORMAL, Notice("resolved", COMPLIANCE_RULE, LEGAL_SCOPE)),
    Phase("topic drift", "support's users ask about travel, under another system prompt",
          {**NORMAL, "support": "travel"}, Notice("firing", DRIFT_RULE, DRIFT_SCOPE),
          drift_run=True),
    Phase("topic recovers", "support's users are back on billing",
          NORMAL, Notice("resolved", DRIFT_RULE, DRIFT_SCOPE), drift_run=True),
)  # fmt: skip
EXPECTED = tuple(phase.expect for phase in PHASES if phase.expect is not None)


def incident_sections(workdir: Path) -> dict[str, dict[str, Any]]:
    """The settings sections the incident needs (merge in the receivers' URLs); writes the
    schema the traffic is checked against under ``workdir``."""
    schemas = workdir / "incident-schemas"
    schemas.mkdir(parents=True, exist_ok=True)
    (schemas / f"{SCHEMA_NAME}.json").write_text(SCHEMA)
    return {
        "alerts": {"interval_s": 0.1, "rules": RULES},
        "compliance": {"schemas_dir": str(schemas)},
        # The sidecar's own loop stays out of the way: `sidecar drift run` makes the runs.
        "drift": {"interval_s": 3600.0, "window_s": DRIFT_WINDOW_S,
                  "min_samples": DRIFT_MIN_SAMPLES},
    }  # fmt: skip


def request(mode: str, index: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The chat request number ``index`` of an adapter in ``mode``: body and headers."""
    adapter, _, fault = mode.partition("-")
    topic = "travel" if adapter == "travel" else adapter
    model = "support" if adapter == "travel" else adapter
    system, words = PROMPTS[topic]
    # Every word of the topic once, rotated: any window of one topic has the same word shares.
    question = " ".join(words[(index + offset) % len(words)] for offset in range(len(words)))
    body = {"model": model, "max_tokens": 8,
            "messages": [{"role": "system", "content": system},
                         {"role": "user", "content": question}]}  # fmt: skip
    headers = {"x-sidecar-schema": SCHEMA_NAME,
               "x-fake-output": INVALID_OUTPUT if fault == "invalid" else VALID_OUTPUT}  # fmt: skip
    if fault == "slow":
        headers["x-fake-latency-ms"] = str(SLOW_MS)
    return body, headers


@dataclass
class IncidentTraffic:
    """Steady background traffic, ``workers`` per adapter; ``modes`` switch while it runs."""

    proxy_url: str
    workers: int = 4
    pause_s: float = 0.1
    modes: dict[str, str] = field(default_factory=lambda: dict(NORMAL))
    answered: Counter[str] = field(default_factory=Counter)  # mode -> answered requests
    sent_at: dict[str, list[float]] = field(default_factory=dict)  # mode -> monotonic times
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _pool: ThreadPoolExecutor | None = None
    _counter: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> IncidentTraffic:
        self._pool = ThreadPoolExecutor(self.workers * len(ADAPTERS), "incident-traffic")
        for adapter in ADAPTERS:
            for _ in range(self.workers):
                self._pool.submit(self._run, adapter)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _next(self, mode: str) -> int:
        with self._lock:
            self._counter[mode] += 1
            return self._counter[mode]

    def _run(self, adapter: str) -> None:
        with httpx.Client(base_url=self.proxy_url, timeout=30) as client:
            while not self._stop.is_set():
                mode = self.modes[adapter]
                body, headers = request(mode, self._next(mode))
                sent = time.monotonic()
                try:
                    response = client.post("/v1/chat/completions", json=body, headers=headers)
                except httpx.HTTPError as exc:
                    self.failures.append(f"{mode}: {exc!r}")
                    self._stop.wait(self.pause_s)
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{mode}: HTTP {response.status_code}")
                with self._lock:
                    self.answered[mode] += 1
                    self.sent_at.setdefault(mode, []).append(sent)
                self._stop.wait(self.pause_s)

    def recent(self, modes: Sequence[str], seconds: float) -> int:
        """The fewest answered requests of any of ``modes`` sent in the last ``seconds``."""
        since = time.monotonic() - seconds
        with self._lock:
            return min(sum(1 for at in self.sent_at.get(mode, ()) if at >= since)
                       for mode in modes)  # fmt: skip


def alert_rounds(admin_url: str) -> float:
    """``sidecar_alert_rounds_total{result="ok"}`` on the sidecar's ``/metrics``."""
    text = httpx.get(f"{admin_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sidecar_alert_rounds_total" and sample.labels == {"result": "ok"}:
                return sample.value
    return 0.0


def notices(bodies: Sequence[Any]) -> list[Notice]:
    """Every alert in Alertmanager-shaped webhook bodies, in arrival order."""
    found = []
    for body in list(bodies):
        for alert in body["alerts"]:
            labels = dict(alert["labels"])
            rule = labels.pop("alertname")
            labels.pop("severity", None)
            found.append(Notice(alert["status"], rule, tuple(sorted(labels.items()))))
    return found


@dataclass
class Incident:
    """Plays :data:`PHASES` against a sidecar. ``received`` returns what reached a receiver so
    far; ``cli`` runs one ``sidecar`` command (the caller adds ``--config``) and returns its
    output; ``say`` narrates."""

    traffic: IncidentTraffic
    admin_url: str
    received: Callable[[], list[Notice]]
    cli: Callable[[list[str]], str]
    say: Callable[[str], None] = lambda line: None
    timeout_s: float = 60.0
    _shown: int = 0

    def play(self) -> None:
        for phase in PHASES:
            self._play(phase)

    def _play(self, phase: Phase) -> None:
        self.say(f"-- {phase.name}: {phase.story}")
        self.traffic.modes = dict(phase.modes)
        switched, modes = time.monotonic(), list(phase.modes.values())
        if phase.name == "normal":
            self._pin_baseline()
        if phase.drift_run:
            # The run's window (its last DRIFT_WINDOW_S) holds only this phase's traffic, and
            # enough of it even if the command takes a while to start.
            def window_ready() -> bool:
                return (time.monotonic() > switched + DRIFT_WINDOW_S + SWITCH_MARGIN_S
                        and self.traffic.recent(modes, DRIFT_WINDOW_S / 2) >= DRIFT_MIN_SAMPLES)  # fmt: skip

            self._wait(window_ready, "drift window of traffic")
            self.say(self.cli(["drift", "run"]).strip())
        expected = phase.expect
        if expected is not None:
            self._wait(lambda: expected in self.received(), f"{expected}")
        self._hold()

    def _pin_baseline(self) -> None:
        since, started = datetime.now(UTC), time.monotonic()
        modes = list(PHASES[0].modes.values())
        self._wait(lambda: self.traffic.recent(modes, time.monotonic() - started)
                   >= DRIFT_MIN_SAMPLES * 2, "baseline traffic")  # fmt: skip
        self._hold()
        until = datetime.now(UTC)
        output = self.cli(["baseline", "set", "drift", "--since", since.isoformat(),
                           "--until", until.isoformat()])  # fmt: skip
        self.say(output.strip())

    def _hold(self) -> None:
        first = alert_rounds(self.admin_url)
        self._wait(lambda: alert_rounds(self.admin_url) >= first + HOLD_ROUNDS,
                   f"{HOLD_ROUNDS} alert rounds")  # fmt: skip

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not done():
            self._narrate()
            if time.monotonic() > deadline:
                seen = ", ".join(map(str, self.received())) or "nothing"
                raise TimeoutError(f"incident: no {what} within {self.timeout_s:g} s "
                                   f"(received so far: {seen})")  # fmt: skip
            time.sleep(0.05)
        self._narrate()

    def _narrate(self) -> None:
        seen = self.received()
        for notice in seen[self._shown :]:
            self.say(f"   {notice}")
        self._shown = len(seen)
