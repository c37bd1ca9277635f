"""The judge's section and the cost report's (the shipped API prices are in
:mod:`sidecar.reports.cost_model`)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from sidecar.records import ScopeMatch
from sidecar.settings.values import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Section,
    Share,
)

HOURS_PER_MONTH = 730.0


class JudgeRuleSettings(Section, frozen=True):
    """Which traffic a rubric and sample rate apply to (first match wins)."""

    name: Annotated[str, Meta(description=("The rule's name, shown in errors and logs."))]
    model: Annotated[
        str | None, Meta(description=("Match only requests for this model; unset: any model."))
    ] = None
    adapter: Annotated[
        str | None,
        Meta(
            description=(
                "Match only requests the LoRA adapter of this name answered; unset: any adapter."
            )
        ),
    ] = None
    schema: Annotated[
        str | None,
        Meta(description=("Match only requests checked against this schema; unset: any schema.")),
    ] = None
    sample_rate: Annotated[
        Share | None,
        Meta(
            description=(
                "Share of this slice's successful completions sampled at random; unset: "
                "`judge.sample_rate`."
            )
        ),
    ] = None
    rubric: Annotated[
        str | None,
        Meta(
            description=(
                "Rubric YAML file for this slice; unset: `judge.rubric` (else the built-in rubric)."
            ),
        ),
    ] = None

    @property
    def scope(self) -> ScopeMatch:
        return ScopeMatch(self.model, self.adapter, self.schema)


class JudgeSettings(Section, frozen=True):
    """The LLM judge that scores a sample of traffic (docs/judge.md)."""

    enabled: Annotated[
        bool,
        Meta(
            description=(
                "Score a sample of traffic with an LLM judge (docs/judge.md). Off until you point "
                "it at an endpoint."
            )
        ),
    ] = False
    base_url: Annotated[
        str,
        Meta(
            extra={"allowed": "matches `^https?://` (checked when `judge.enabled`)"},
            description=(
                "Any OpenAI-compatible endpoint: OpenAI, or your own vLLM serving a stronger model."
            ),
        ),
    ] = "https://api.openai.com/v1"
    model: Annotated[
        str,
        Meta(
            description=(
                "The judge model, as the endpoint names it (a stronger model than the one judged)."
            )
        ),
    ] = "gpt-4o-mini"
    api_key: Annotated[
        str | None,
        Meta(
            description=(
                "The judge's key; write `${OPENAI_API_KEY}` to read it from the environment. Never "
                "logged or stored."
            )
        ),
    ] = None
    sample_rate: Annotated[
        Share,
        Meta(
            description=(
                "Share of successful completions sampled at random for the quality estimate."
            )
        ),
    ] = 0.05
    min_samples_per_window: Annotated[
        NonNegativeInt,
        Meta(
            description=(
                "Per model x adapter x schema, the first N requests of each window are sampled too "
                "(`floor`), so quiet adapters are scored."
            )
        ),
    ] = 5
    sample_window_s: Annotated[
        PositiveFloat, Meta(description=("The window for `min_samples_per_window`."))
    ] = 3600.0
    always_sample: Annotated[
        list[Literal["schema_invalid", "thumbs_down", "error"]],
        Meta(
            description=(
                "Hard cases judged apart from the random sample (never in the quality estimate): "
                "`schema_invalid`, `thumbs_down`, `error` (failed or cut-off answers)."
            )
        ),
    ] = msgspec.field(default_factory=lambda: ["schema_invalid", "thumbs_down"])
    rubric: Annotated[
        str | None,
        Meta(
            extra={"default": "built-in"},
            description=(
                "Rubric YAML for traffic no rule matches; the built-in scores correctness, "
                "helpfulness, format and tone on 1-5."
            ),
        ),
    ] = None
    rules: Annotated[
        list[JudgeRuleSettings],
        Meta(
            description=(
                "Per traffic slice, first match wins: `{name, model, adapter, schema, sample_rate, "
                "rubric}`. A bad rubric file stops the start naming the file and field."
            )
        ),
    ] = msgspec.field(default_factory=list)
    interval_s: Annotated[
        PositiveFloat, Meta(description=("How often each sidecar claims and judges new samples."))
    ] = 30.0
    batch_size: Annotated[
        PositiveInt,
        Meta(description=("Samples each sidecar claims per round (every `interval_s`).")),
    ] = 20
    lookback_s: Annotated[
        PositiveFloat,
        Meta(description=("How far back samples are picked up (and the periodic batch's window).")),
    ] = 7 * 86400.0
    concurrency: Annotated[
        PositiveInt,
        Meta(
            description=(
                "Judge calls in flight per sidecar; lower it when the judge endpoint answers `429`."
            )
        ),
    ] = 4
    timeout_s: Annotated[
        PositiveFloat,
        Meta(
            description=(
                "Longest one judge call may take; past it the call counts as a timeout and is "
                "retried (`max_retries`)."
            )
        ),
    ] = 60.0
    max_retries: Annotated[
        NonNegativeInt,
        Meta(
            description=(
                "Retries on 429 (waiting `Retry-After`), 5xx, timeouts and refused connections, "
                "with exponential backoff from 0.5 s."
            )
        ),
    ] = 3
    claim_timeout_s: Annotated[
        PositiveFloat,
        Meta(
            description=(
                "A claim its replica never finished (killed mid-call) is taken over after this."
            )
        ),
    ] = 600.0
    max_calls_per_day: Annotated[
        NonNegativeInt,
        Meta(
            description=(
                "Daily cap on judge calls over all replicas (UTC day). At the cap sampling pauses "
                "until the next day."
            )
        ),
    ] = 2000
    max_cost_per_day_usd: Annotated[
        NonNegativeFloat, Meta(description=("Daily cap on judge spend at the prices below."))
    ] = 5.0
    input_per_million_usd: Annotated[
        NonNegativeFloat,
        Meta(description=("Judge price per 1M input tokens (gpt-4o-mini list price).")),
    ] = 0.15
    output_per_million_usd: Annotated[
        NonNegativeFloat, Meta(description=("Judge price per 1M output tokens."))
    ] = 0.6
    batch_cron: Annotated[
        str | None,
        Meta(
            description=(
                "Periodic batch in crontab syntax (UTC), e.g. `0 3 * * 1`: `batch_samples` random "
                "requests of the last `lookback_s`, run by one replica."
            )
        ),
    ] = None
    batch_samples: Annotated[PositiveInt, Meta(description=("Requests per periodic batch."))] = 200
    baseline_auto_samples: Annotated[
        NonNegativeInt,
        Meta(
            description=(
                "Without a quality baseline, the first N unbiased scores per model/adapter become "
                "it (0: only `sidecar baseline set`)."
            )
        ),
    ] = 200
    max_drop: Annotated[
        float,
        Meta(
            gt=0,
            lt=1,
            extra={"must": "be a share between 0 and 1 (0.10 = 10%)"},
            description=(
                "The `quality_drop` test: a drop larger than this share of the baseline mean..."
            ),
        ),
    ] = 0.1
    confidence: Annotated[
        float,
        Meta(
            ge=0.5,
            lt=1,
            extra={"must": "be between 0.5 and 1 (e.g. 0.95)"},
            description=(
                "...that Welch's one-sided t-test finds significant at this confidence..."
            ),
        ),
    ] = 0.95
    min_samples: Annotated[
        PositiveInt, Meta(description=("...with at least this many current scores."))
    ] = 30


class ApiPrice(Section, frozen=True):
    """One API model's list price, per 1M tokens."""

    input_per_million_usd: Annotated[
        NonNegativeFloat, Meta(description=("API price per 1M input (prompt) tokens, in USD."))
    ]
    output_per_million_usd: Annotated[
        NonNegativeFloat, Meta(description=("API price per 1M output (completion) tokens, in USD."))
    ]


class CostSettings(Section, frozen=True):
    """What the GPU costs and what the API would, for `sidecar report cost` (docs/reports.md)."""

    gpu_hourly_usd: Annotated[
        NonNegativeFloat,
        Meta(description=("Rental price of one GPU per hour, for `sidecar report cost`.")),
    ] = 1.5
    gpu_count: Annotated[NonNegativeInt, Meta(description=("GPUs serving the model."))] = 1
    gpu_monthly_usd: Annotated[
        NonNegativeFloat | None,
        Meta(
            description=(
                "Monthly GPU cost; when set it replaces hourly x 730 h x count (use it for owned "
                "hardware or a reserved price)."
            )
        ),
    ] = None
    system_prompt_tokens: Annotated[
        NonNegativeInt,
        Meta(
            description=(
                "Tokens of the long system prompt / few-shot examples a general API model would "
                "need "
                'and the fine-tuned model does not: the report\'s "hidden saving".'
            )
        ),
    ] = 0
    api_prices: Annotated[
        dict[str, ApiPrice],
        Meta(
            description=(
                "Per-model API prices per 1M tokens, merged over the shipped 2024-08 OpenAI list "
                "prices for `gpt-4o` ($2.50 / $10.00), `gpt-4o-mini` ($0.15 / $0.60) and "
                "`ft:gpt-4o-mini` ($0.30 / $1.20): `{MODEL: {input_per_million_usd: ..., "
                "output_per_million_usd: ...}}`."
            )
        ),
    ] = msgspec.field(default_factory=dict)

    @property
    def monthly_gpu_usd(self) -> float:
        """The configured monthly cost, else hourly x 730 h x GPUs."""
        if self.gpu_monthly_usd is not None:
            return self.gpu_monthly_usd
        return self.gpu_hourly_usd * HOURS_PER_MONTH * self.gpu_count
