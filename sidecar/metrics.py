"""Prometheus metrics, on an injected registry (tests never share state).

Names follow ``sidecar_<thing>_<unit>``; counters end in ``_total``. Label
values are bounded: names the upstream serves keep their own label; names clients invent share
what is left of ``max_label_values`` and collapse to ``other`` past it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OTHER = "other"
LATENCY_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
TTFT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOB_OUTCOMES = ("ok", "failed", "skipped")  # of one round of a job loop (sidecar.scheduler)


class LabelLimiter:
    """Bounded label values, with the slots reserved for names that are really served.

    :meth:`serve` names the values the upstream serves (its model list, the configured schemas):
    each keeps its own label, up to ``limit`` of them. Any other value (a name a client made up,
    a typo answered 404) gets one of the slots the served names leave free, first come, and
    ``other`` once those are taken, so a client cannot push real models into ``other``. A value
    keeps its label once given (no series splits in two); at most ``2 * limit`` distinct labels
    ever exist (``limit`` served, ``limit`` invented before the model list was known).
    """

    __slots__ = ("_admitted", "_invented", "_limit", "_lock", "_served")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._admitted: set[str] = set()
        self._served: frozenset[str] = frozenset()
        self._invented = 0
        self._lock = threading.Lock()

    def serve(self, names: Iterable[str]) -> None:
        """The values served now (the first ``limit`` of them, in order, get reserved slots)."""
        served = frozenset(list(dict.fromkeys(names))[: self._limit])
        with self._lock:
            self._served = served

    def __call__(self, value: str | None) -> str:
        if not value:
            return "none"
        if value in self._admitted:
            return value
        with self._lock:
            if value in self._served:
                self._admitted.add(value)
                return value
            if self._invented < self._limit - len(self._served):
                self._invented += 1
                self._admitted.add(value)
                return value
        return OTHER


class SidecarMetrics:
    """Every metric the sidecar exports, registered on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None, *, max_label_values: int = 50):
        self.registry = registry if registry is not None else CollectorRegistry()
        self.model_label = LabelLimiter(max_label_values)
        self.schema_label = LabelLimiter(max_label_values)
        r = self.registry
        self.requests = Counter(
            "sidecar_requests", "Proxied requests, by model as requested and HTTP status.",
            ["model", "status"], registry=r,
        )  # fmt: skip
        self.request_duration = Histogram(
            "sidecar_request_duration_seconds",
            "Time from request received to last response byte, through the sidecar.",
            ["model"], buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.time_to_first_token = Histogram(
            "sidecar_time_to_first_token_seconds",
            "Streams: time from request received to the first chunk carrying output.",
            ["model"], buckets=TTFT_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.upstream_errors = Counter(
            "sidecar_upstream_errors",
            "Upstream failures: unreachable, timeout, reset mid-stream, 5xx answers.",
            ["kind"], registry=r,
        )  # fmt: skip
        self.client_disconnects = Counter(
            "sidecar_client_disconnects", "Requests the client abandoned before the end.",
            registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "sidecar_tokens", "Tokens reported by the upstream's usage, by model and kind.",
            ["model", "kind"], registry=r,
        )  # fmt: skip
        self.schema_validations = Counter(
            "sidecar_schema_validations",
            "Outputs checked against a JSON schema, by schema, model and verdict "
            "(valid, invalid, unparseable, truncated, schema_error).",
            ["schema", "model", "result"], registry=r,
        )  # fmt: skip
        self.feedback = Counter(
            "sidecar_feedback",
            "End-user feedback received, by rating (up, down, 1-5).",
            ["rating"], registry=r,
        )  # fmt: skip
        self.alerts_firing = Gauge(
            "sidecar_alerts_firing", "Alerts firing now, by rule (counted over all scopes).",
            ["rule"], registry=r,
        )  # fmt: skip
        self.alert_rounds = Counter(
            "sidecar_alert_rounds", "Alert evaluation rounds: ok, or skipped (database unreachable).",
            ["result"], registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            "sidecar_in_flight_requests", "Requests being proxied right now.", registry=r
        )
        self.spool_bytes = Gauge(
            "sidecar_log_spool_bytes", "Bytes in the local log spool not yet written to the store.",
            registry=r,
        )  # fmt: skip
        self.spool_last_fsync = Gauge(
            "sidecar_log_spool_last_fsync_timestamp_seconds",
            "Unix time of the spool's last successful fsync (or the fsync loop's start) with "
            "spool.fsync: interval; 0 with always or never.",
            registry=r,
        )  # fmt: skip
        self.rows_written = Counter(
            "sidecar_log_rows_written", "Request rows committed to the store.", registry=r
        )
        self.rows_lost = Counter(
            "sidecar_log_rows_lost",
            "Request records that will never reach the store, by reason "
            "(spool_full, disk_full, io_error, corrupt, rejected).",
            ["reason"], registry=r,
        )  # fmt: skip
        for reason in ("spool_full", "disk_full", "io_error", "corrupt", "rejected"):
            self.rows_lost.labels(reason)  # present at 0, so the first loss shows in increase()
        self.rows_degraded = Counter(
            "sidecar_log_rows_degraded",
            "Rows logged without part of their build, by reason (check_timeout, worker_died: "
            "quarantined after one retry; backtrack_limit: a schema pattern gave up).",
            ["reason"], registry=r,
        )  # fmt: skip
        for reason in ("check_timeout", "worker_died", "backtrack_limit"):
            self.rows_degraded.labels(reason)
        self.row_workers_replaced = Counter(
            "sidecar_log_row_workers_replaced",
            "Row worker processes killed and replaced: past writer.record_deadline_s "
            "(deadline) or dead (died).",
            ["reason"], registry=r,
        )  # fmt: skip
        for reason in ("deadline", "died"):
            self.row_workers_replaced.labels(reason)
        self.store_errors = Counter(
            "sidecar_log_store_errors", "Failed store writes (the batch is retried).",
            ["kind"], registry=r,
        )  # fmt: skip
        self.writer_lag = Gauge(
            "sidecar_log_writer_lag_seconds",
            "Age of the oldest record the writer committed last (request start to commit).",
            registry=r,
        )  # fmt: skip
        self.judge_score = Histogram(
            "sidecar_judge_score",
            "Judge overall scores, normalised to 0-1 ((score - low) / (high - low)), by model "
            "and rubric.",
            ["model", "rubric"], buckets=SCORE_BUCKETS, registry=r,
        )  # fmt: skip
        self.judge_requests = Counter(
            "sidecar_judge_requests",
            "Samples the judge job handled, by result (scored, error, unjudgeable, unavailable).",
            ["result"], registry=r,
        )  # fmt: skip
        self.judge_samples = Counter(
            "sidecar_judge_samples",
            "Requests sampled for the judge by the log writer, by reason (random, floor, "
            "schema_invalid, error).",
            ["reason"], registry=r,
        )  # fmt: skip
        self.judge_cost = Counter(
            "sidecar_judge_cost_usd", "Judge spend at the configured prices, in US dollars.",
            registry=r,
        )  # fmt: skip
        self.judge_budget_exhausted = Gauge(
            "sidecar_judge_budget_exhausted",
            "1 while the judge's daily call or cost cap is reached (sampling paused).",
            registry=r,
        )  # fmt: skip
        self.judge_rounds = Counter(
            "sidecar_judge_rounds", "Judge loop rounds: ok, or skipped (database unreachable, "
            "or the round failed).", ["result"], registry=r,
        )  # fmt: skip
        self.drift_score = Gauge(
            "sidecar_drift_score",
            "Last drift check's statistic per feature and model (p-value for ks/chi2, "
            "distance for wasserstein/jensenshannon; see drift_checks.statistic).",
            ["feature", "model"], registry=r,
        )  # fmt: skip
        self.drift_detected = Gauge(
            "sidecar_drift_detected", "1 when the last drift check flagged the feature.",
            ["feature", "model"], registry=r,
        )  # fmt: skip
        self.drift_share = Gauge(
            "sidecar_drift_share", "Share of features (with a verdict) that drifted, last check.",
            ["model"], registry=r,
        )  # fmt: skip
        self.drift_rounds = Counter(
            "sidecar_drift_rounds", "Drift loop rounds (a run, or none due): ok, or skipped "
            "(database unreachable, or the round failed).", ["result"], registry=r,
        )  # fmt: skip
        self.job_rounds = Counter(
            "sidecar_job_rounds",
            "Rounds of each background job loop (alerts, judge, drift), by outcome: ok, failed "
            "(the round raised; the loop goes on), skipped (the previous round was still running).",
            ["job", "outcome"], registry=r,
        )  # fmt: skip
        # The per-job counters from before sidecar_job_rounds_total, kept for dashboards: their
        # "skipped" is a failed round (a round never overlapped another there).
        self._job_results = {"alerts": self.alert_rounds, "judge": self.judge_rounds,
                             "drift": self.drift_rounds}  # fmt: skip
        self.upstream_up = Gauge(
            "sidecar_upstream_up", "1 when the last upstream health check succeeded.", registry=r
        )
        self.upstream_connections_in_use = Gauge(
            "sidecar_upstream_connections_in_use",
            "Upstream connection slots held by requests now (at most upstream.max_connections).",
            registry=r,
        )  # fmt: skip
        self.client_connections = Gauge(
            "sidecar_client_connections", "Client connections open on the proxy port now.",
            registry=r,
        )  # fmt: skip
        self.client_connections_closed = Counter(
            "sidecar_client_connections_closed",
            "Client connections the proxy cut short, by reason (head_timeout: no complete "
            "request head in time; over_limit: past proxy.max_client_connections; "
            "head_too_large).",
            ["reason"], registry=r,
        )  # fmt: skip

    def count_round(self, job: str, outcome: str) -> None:
        """One round of a job loop (``outcome`` in :data:`JOB_OUTCOMES`)."""
        self.job_rounds.labels(job, outcome).inc()
        per_job = self._job_results.get(job)
        if per_job is not None and outcome != "skipped":
            per_job.labels("ok" if outcome == "ok" else "skipped").inc()
