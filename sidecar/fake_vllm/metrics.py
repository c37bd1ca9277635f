"""The fake's ``/metrics``: vLLM 0.32.0 names and labels on a registry owned by one app."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

FINISHED_REASONS = ("stop", "length", "abort", "error", "repetition")
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
               120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
CONTENT_TYPE = CONTENT_TYPE_LATEST.encode()


def one_two_five_buckets(limit: int) -> tuple[float, ...]:
    """vLLM's token-count buckets: 1, 2, 5, 10, 20, 50, ... up to ``limit``."""
    buckets: list[float] = []
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale > limit:
                return tuple(buckets)
            buckets.append(float(step * scale))
        scale *= 10


@dataclass(frozen=True, slots=True)
class ModelSeries:
    """The labelled children for one ``model_name`` (bound once, reused on the hot path)."""

    running: Gauge
    prompt_tokens: Counter
    generation_tokens: Counter
    success: dict[str, Counter]
    e2e_latency: Histogram
    time_to_first_token: Histogram
    request_prompt_tokens: Histogram
    request_generation_tokens: Histogram


class FakeVllmMetrics:
    def __init__(self, max_model_len: int, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        labels = ("engine", "model_name")
        reg = self.registry
        self._running = Gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            labels,
            registry=reg,
        )
        self._waiting = Gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            labels,
            registry=reg,
        )
        self._kv_cache = Gauge(
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            labels,
            registry=reg,
        )
        self._prompt = Counter(
            "vllm:prompt_tokens", "Number of prefill tokens processed.", labels, registry=reg
        )
        self._generation = Counter(
            "vllm:generation_tokens", "Number of generation tokens processed.", labels, registry=reg
        )
        self._success = Counter(
            "vllm:request_success", "Count of successfully processed requests.",
            ("engine", "finished_reason", "model_name"), registry=reg,
        )  # fmt: skip
        self._e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            labels,
            registry=reg,
            buckets=E2E_BUCKETS,
        )
        self._ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            labels,
            registry=reg,
            buckets=TTFT_BUCKETS,
        )
        tokens = one_two_five_buckets(max_model_len)
        self._request_prompt = Histogram(
            "vllm:request_prompt_tokens",
            "Number of prefill tokens processed.",
            labels,
            registry=reg,
            buckets=tokens,
        )
        self._request_generation = Histogram(
            "vllm:request_generation_tokens",
            "Number of generation tokens processed.",
            labels,
            registry=reg,
            buckets=tokens,
        )
        self._series: dict[str, ModelSeries] = {}

    def series(self, model_name: str) -> ModelSeries:
        """Children for ``model_name`` (vLLM labels every series with the first served name)."""
        found = self._series.get(model_name)
        if found is None:
            found = self._series[model_name] = self._bind(model_name)
        return found

    def _bind(self, model_name: str) -> ModelSeries:
        self._waiting.labels("0", model_name)
        self._kv_cache.labels("0", model_name)
        return ModelSeries(
            running=self._running.labels("0", model_name),
            prompt_tokens=self._prompt.labels("0", model_name),
            generation_tokens=self._generation.labels("0", model_name),
            success={
                reason: self._success.labels("0", reason, model_name) for reason in FINISHED_REASONS
            },
            e2e_latency=self._e2e.labels("0", model_name),
            time_to_first_token=self._ttft.labels("0", model_name),
            request_prompt_tokens=self._request_prompt.labels("0", model_name),
            request_generation_tokens=self._request_generation.labels("0", model_name),
        )

    def record_finished(
        self, model_name: str, prompt_tokens: int, generated_tokens: int, finished_reason: str,
        e2e_s: float, first_token_s: float,
    ) -> None:  # fmt: skip
        series = self.series(model_name)
        series.prompt_tokens.inc(prompt_tokens)
        series.generation_tokens.inc(generated_tokens)
        series.success[finished_reason if finished_reason in series.success else "stop"].inc()
        series.e2e_latency.observe(e2e_s)
        series.time_to_first_token.observe(first_token_s)
        series.request_prompt_tokens.observe(prompt_tokens)
        series.request_generation_tokens.observe(generated_tokens)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
