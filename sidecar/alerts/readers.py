"""Rule readers: one windowed aggregate per rule and scope, read from ``requests`` (and
``feedback``) over ``[now - window, now)`` only, so the cost follows the window, not the table.

A reader is a Protocol with a registry; the built-ins register themselves the way a user's own
reader would.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from sidecar.alerts.evaluate import Reading, RuleSpec
from sidecar.drift.job import ALL_FEATURES
from sidecar.errors import ConfigError
from sidecar.judge.quality import quality_drop
from sidecar.records import FeatureDrift, Scope, TimeWindow, Verdict, make_scope
from sidecar.settings import AlertRuleSettings
from sidecar.store.baselines import QUALITY, active_baselines
from sidecar.store.tables import feedback_table, requests_table
from sidecar.store.windows import newest_drift_run, unbiased_scores, within

SCOPE_COLUMNS = {"model": "model", "adapter": "adapter", "schema": "schema_name"}


@dataclass(frozen=True, slots=True)
class RuleDefinition:
    """A rule as configured: the lifecycle spec plus what to measure and how to group it."""

    spec: RuleSpec
    kind: str  # a registered reader: latency, compliance_rate, error_rate, throughput, satisfaction
    window_s: float = 300.0
    group_by: tuple[str, ...] = ("model",)
    options: dict[str, Any] = field(
        default_factory=dict
    )  # e.g. {"quantile": 0.95, "metric": "ttft"}


Reader = Callable[[AsyncConnection, RuleDefinition, datetime], Awaitable[list[Reading]]]
READERS: dict[str, Reader] = {}


def reader(kind: str) -> Callable[[Reader], Reader]:
    def register(function: Reader) -> Reader:
        READERS[kind] = function
        return function

    return register


def _scope_columns(table: sa.Table, definition: RuleDefinition) -> list[sa.ColumnElement[Any]]:
    return [table.c[SCOPE_COLUMNS[name]].label(name) for name in definition.group_by]


def _scope(definition: RuleDefinition, row: Any) -> Scope:
    return make_scope(
        (name, "" if row[name] is None else str(row[name])) for name in definition.group_by
    )


def _window(definition: RuleDefinition, now: datetime) -> TimeWindow:
    """The rule's window: the ``window_s`` before ``now``."""
    return TimeWindow.last(definition.window_s, now)


@reader("latency")
async def latency(
    connection: AsyncConnection, definition: RuleDefinition, now: datetime
) -> list[Reading]:
    """A latency quantile in ms (``quantile``, default 0.95; ``metric: ttft`` for streams)."""
    table = requests_table
    column = table.c.ttft_ms if definition.options.get("metric") == "ttft" else table.c.latency_ms
    quantile = float(definition.options.get("quantile", 0.95))
    query = sa.select(*_scope_columns(table, definition), column.label("value")).where(
        within(table.c.started_at, _window(definition, now)),
        table.c.status < 500,
        column.is_not(None),
    )
    values: dict[Scope, list[float]] = defaultdict(list)
    for row in (await connection.execute(query)).mappings():
        values[_scope(definition, row)].append(row["value"])
    return [Reading(definition.spec.name, scope, _quantile(found, quantile), len(found))
            for scope, found in sorted(values.items())]  # fmt: skip


def _quantile(values: list[float], quantile: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(quantile * 1000) - 1]


async def _ratio(
    connection: AsyncConnection, definition: RuleDefinition, now: datetime,
    numerator: sa.ColumnElement[bool], where: sa.ColumnElement[bool] | None = None,
) -> list[Reading]:  # fmt: skip
    table = requests_table
    scope = _scope_columns(table, definition)
    query = (
        sa.select(
            *scope,
            sa.func.count().label("n"),
            sa.func.sum(sa.case((numerator, 1), else_=0)).label("hits"),
        )
        .where(
            within(table.c.started_at, _window(definition, now)),
            *([where] if where is not None else []),
        )
        .group_by(*scope)
    )
    rows = (await connection.execute(query)).mappings().all()
    return _percent_readings(definition, rows)


def _percent_readings(definition: RuleDefinition, rows: Any) -> list[Reading]:
    readings = [
        Reading(
            definition.spec.name, _scope(definition, row), 100.0 * row["hits"] / row["n"], row["n"]
        )
        for row in rows
        if row["n"]
    ]
    return sorted(readings, key=lambda found: found.scope)


@reader("compliance_rate")
async def compliance_rate(
    connection: AsyncConnection, definition: RuleDefinition, now: datetime
) -> list[Reading]:
    """Percent of checked outputs that were valid; a check that did not finish (``check_timeout``)
    says nothing about the model and is left out."""
    table = requests_table
    checked = table.c.schema_verdict.is_not(None) & (
        table.c.schema_verdict != Verdict.CHECK_TIMEOUT
    )
    return await _ratio(
        connection, definition, now, table.c.schema_verdict == Verdict.VALID, checked
    )


@reader("error_rate")
async def error_rate(
    connection: AsyncConnection, definition: RuleDefinition, now: datetime
) -> list[Reading]:
    """Percent of requests that failed: 5xx answers and upstream failures."""
    table = requests_table
    failed = sa.or_(table.c.status >= 500, table.c.error_kind.like("upstream%"))
    return await _ratio(connection, definition, now, failed)


@reader("throughput")
async def throughput(
    connection: AsyncConnection, definition: RuleDefinition, now: datetime
) -> list[Reading]:
    """Requests per second over the window (compare ``below`` the capacity plan)."""
    table = requests_table
    scope = _scope_columns(table, definition)
    query = (
        sa.select(*scope, sa.func.count().label("n"))
        .where(within(table.c.started_at, _window(definition, now)))
        .group_by(*scope)
    )
    rows = (await connection.execute(query)).mappings().all()
    readings = [Reading(definition.spec.name, _scope(definition, row), row["n"] / definition.window_s, row["n"])
                for row in rows]  # fmt: skip
    if not readings and not definition.group_by:
        readings = [Reading(definition.spec.name, (), 0.0, 0)]  # no traffic at all is a reading
    return sorted(readings, key=lambda found: found.scope)


@reader("satisfaction")
async def satisfaction(
    connection: AsyncConnection, definition: RuleDefinition, now: datetime
) -> list[Reading]:
    """Percent of feedback in the window that was satisfied (thumbs-up or 4-5)."""
    rated, table = feedback_table, requests_table
    scope = _scope_columns(table, definition)
    query = (
        sa.select(
            *scope,
            sa.func.count().label("n"),
            sa.func.sum(sa.case((rated.c.satisfied, 1), else_=0)).label("hits"),
        )
        .select_from(rated.join(table, table.c.id == rated.c.request_id))
        .where(within(rated.c.created_at, _window(definition, now)))
        .group_by(*scope)
    )
    rows = (await connection.execute(query)).mappings().all()
    return _percent_readings(definition, rows)


@reader("quality_drop")
async def quality_drop_reader(
    connection: AsyncConnection, definition: RuleDefinition, now: datetime
) -> list[Reading]:
    """Percent the judge's mean score fell below the quality baseline, counted only when Welch's
    one-sided test finds it significant at ``confidence`` (else 0); samples = scores in window."""
    confidence = float(definition.options.get("confidence", 0.95))
    scores = await unbiased_scores(connection, _window(definition, now))
    readings = []
    for baseline in await active_baselines(connection, QUALITY):
        if baseline.summary is None:
            continue
        current = [score for (model, adapter, _, version), found in scores.items()
                   if (model, adapter, version) == (baseline.model, baseline.adapter,
                                                    baseline.rubric_version)
                   for score in found]  # fmt: skip
        verdict = quality_drop(
            baseline.summary, current, max_drop=0.0, confidence=confidence, min_samples=2
        )
        labels = {"model": baseline.model or "", "adapter": baseline.adapter or "", "schema": ""}
        scope = make_scope((name, labels[name]) for name in definition.group_by)
        readings.append(
            Reading(definition.spec.name, scope, verdict.significant_drop_pct, len(current))
        )
    return sorted(readings, key=lambda found: found.scope)


@reader("drift")
async def drift_reader(
    connection: AsyncConnection, definition: RuleDefinition, now: datetime
) -> list[Reading]:
    """Percent of features that drifted in the newest drift run of the window, per model/adapter
    (only the ``features`` named, when given); samples = features with a verdict."""
    named = definition.options.get("features")
    verdicts: dict[tuple[str, str], list[bool]] = defaultdict(list)
    drifted: dict[tuple[str, str], list[FeatureDrift]] = defaultdict(list)
    for check in await newest_drift_run(connection, _window(definition, now)):
        key, result = (check.model or "", check.adapter or ""), check.result
        verdicts.setdefault(key, [])
        if result.drifted is not None and (named is None or result.feature in named):
            verdicts[key].append(bool(result.drifted))
            if result.drifted:
                drifted[key].append(result)
    readings = []
    for (model, adapter), found in verdicts.items():
        labels = {"model": model, "adapter": adapter, "schema": ""}
        scope = make_scope((name, labels[name]) for name in definition.group_by)
        value = 100.0 * sum(found) / len(found) if found else None
        detail = drift_detail(drifted[(model, adapter)])
        readings.append(Reading(definition.spec.name, scope, value, len(found), detail))
    return sorted(readings, key=lambda found: found.scope)


MOVED_SHOWN, MOVED_CHARS = 3, 120


def drift_detail(drifted: Sequence[FeatureDrift]) -> str:
    """The drifted features with their statistic, and for an embedding feature the texts of the
    current window that moved most, so the notification says what changed:
    ``drifted: prompt_embedding (mmd 0.005); prompts that moved: "..."; "..."``."""
    if not drifted:
        return ""
    parts = ["drifted: " + ", ".join(
        f"{result.feature} ({result.statistic} {result.value:.3g})" if result.value is not None
        else result.feature for result in drifted)]  # fmt: skip
    for result in drifted:
        movers = result.top_movers if result.kind == "embedding" else ()
        if not movers:
            continue
        what = "prompts" if result.feature.startswith("prompt") else "outputs"
        texts = [_clip(str(mover[0])) for mover in movers[:MOVED_SHOWN]]
        parts.append(f"{what} that moved: " + "; ".join(f'"{text}"' for text in texts))
    return "; ".join(parts)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MOVED_CHARS else text[: MOVED_CHARS - 1] + "…"


# The monitoring table's defaults (seed): P95 > 500 ms, compliance < 95%, satisfaction below
# baseline (here a fixed 80% until baselines land), plus error rate; throughput needs a plan.
DEFAULT_RULES = (
    RuleDefinition(RuleSpec("latency_p95", 500.0, "above", for_s=300, min_samples=50, severity="warning"),
                   "latency", window_s=300, group_by=("model",), options={"quantile": 0.95}),
    RuleDefinition(RuleSpec("compliance_rate", 95.0, "below", for_s=600, min_samples=50, severity="warning"),
                   "compliance_rate", window_s=3600, group_by=("schema", "model")),
    RuleDefinition(RuleSpec("error_rate", 5.0, "above", for_s=300, min_samples=50, severity="page"),
                   "error_rate", window_s=300, group_by=("model",)),
    RuleDefinition(RuleSpec("satisfaction", 80.0, "below", for_s=0, min_samples=30, severity="warning"),
                   "satisfaction", window_s=86400, group_by=("model",)),
    RuleDefinition(RuleSpec("quality_drop", 10.0, "above", for_s=0, min_samples=30, severity="warning"),
                   "quality_drop", window_s=86400, group_by=("model", "adapter"),
                   options={"confidence": 0.95}),
    # More than a quarter of the features (4 of 13) at once: at 5% per feature by chance, well
    # under 1% of steady runs; name features (alerts.rules[drift].features) to watch them alone.
    RuleDefinition(RuleSpec("drift", 25.0, "above", for_s=0, min_samples=3, severity="warning"),
                   "drift", window_s=7200, group_by=("model", "adapter")),
)  # fmt: skip


def rule_definitions(configured: Sequence[AlertRuleSettings]) -> list[RuleDefinition]:
    """The built-in rules, overridden, disabled or extended by ``alerts.rules`` (by name)."""
    rules = {definition.spec.name: definition for definition in DEFAULT_RULES}
    for entry in configured:
        where = f"alerts.rules[{entry.name}]"
        if not entry.enabled:
            rules.pop(entry.name, None)
            continue
        base = rules.get(entry.name)
        if base is None:
            missing = [f for f in ("kind", "threshold", "comparison") if getattr(entry, f) is None]
            if missing:
                raise ConfigError(f"{where}: a new rule needs {', '.join(missing)}")
            base = RuleDefinition(RuleSpec(entry.name, 0.0), entry.kind or "")
        kind = entry.kind or base.kind
        if kind not in READERS:
            raise ConfigError(
                f"{where}.kind: unknown reader {kind!r}; known: {', '.join(sorted(READERS))}"
            )
        group_by = tuple(entry.group_by) if entry.group_by is not None else base.group_by
        if len(set(group_by)) < len(group_by):
            raise ConfigError(f"{where}.group_by: each label at most once, got {list(group_by)}")
        unknown = [name for name in group_by if name not in SCOPE_COLUMNS]
        if unknown:
            raise ConfigError(
                f"{where}.group_by: {unknown[0]!r} is not one of {', '.join(SCOPE_COLUMNS)}"
            )
        options = dict(base.options)
        if entry.quantile is not None:
            if not 0 < entry.quantile < 1:
                raise ConfigError(
                    f"{where}.quantile: must be between 0 and 1, got {entry.quantile}"
                )
            options["quantile"] = entry.quantile
        if entry.metric is not None:
            options["metric"] = entry.metric
        if entry.features is not None:
            unknown = sorted(set(entry.features) - set(ALL_FEATURES))
            if unknown:
                raise ConfigError(f"{where}.features: {unknown[0]!r} is not a drift feature; "
                                  f"known: {', '.join(ALL_FEATURES)}")  # fmt: skip
            options["features"] = list(entry.features)
        window_s = entry.window_s if entry.window_s is not None else base.window_s
        if window_s <= 0:
            raise ConfigError(f"{where}.window_s: must be greater than 0")
        for name in ("for_s", "keep_firing_for_s", "repeat_interval_s"):
            if (seconds := getattr(entry, name)) is not None and seconds < 0:
                raise ConfigError(f"{where}.{name}: must be 0 or more seconds, got {seconds}")
        spec = dataclasses.replace(base.spec, **{
            field: getattr(entry, field)
            for field in ("threshold", "comparison", "for_s", "min_samples", "repeat_interval_s",
                          "keep_firing_for_s", "severity")
            if getattr(entry, field) is not None
        })  # fmt: skip
        rules[entry.name] = RuleDefinition(spec, kind, window_s, group_by, options)
    return list(rules.values())
