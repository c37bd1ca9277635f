"""Spool records -> finished ``requests`` rows, as one pure step that can run in another process.

Decoding, SSE reassembly, the body policy, the schema verdict, the drift features and (with
``drift.embeddings``) the sentence vectors are the writer's CPU work (a few hundred
microseconds a row, mostly pure Python). Done in a worker process (:mod:`sidecar.logqueue.rowworkers`) they leave the proxy's event loop alone.

A record whose build ran past its deadline or killed its worker twice is *quarantined*:
:func:`build_quarantined` logs it without the schema check and the drift features (the parts
that can be expensive, embeddings included), with the verdict ``check_timeout``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import msgspec

from sidecar.drift.embeddings import Field, embed_row, load_embedder
from sidecar.drift.features import extract_features
from sidecar.logqueue.rows import prepare_row, with_verdict
from sidecar.records import (
    Exchange,
    LoggedRequest,
    ModelIdentity,
    SchemaIssue,
    SchemaVerdict,
    Verdict,
)
from sidecar.validators.compliance import Compliance
from sidecar.validators.selection import Exchanged
from sidecar.wire.identity import identify_in

# Why a row was logged without part of its build (sidecar_log_rows_degraded_total{reason}).
CHECK_TIMEOUT = "check_timeout"  # its build ran past writer.record_deadline_s, twice
WORKER_DIED = "worker_died"  # its worker process died while building it, twice
BACKTRACK_LIMIT = "backtrack_limit"  # a schema pattern ran past its backtracking limit
DEGRADED_REASONS = (CHECK_TIMEOUT, WORKER_DIED, BACKTRACK_LIMIT)


@dataclass(frozen=True, slots=True)
class BuildOptions:
    body_policy: str
    max_body_bytes: int
    drift_features: bool
    embedding_model: str = "static"  # drift.embeddings.model
    embedding_fields: tuple[Field, ...] = ()  # drift.embeddings.fields; () when off


@dataclass(slots=True)
class BuiltBatch:
    rows: list[LoggedRequest] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # why each dropped record was unreadable
    unknown_models: list[str] = field(default_factory=list)  # not in the catalog snapshot
    degraded: list[str] = field(default_factory=list)  # a reason per row logged without a part
    workers_replaced: list[str] = field(default_factory=list)  # "deadline" / "died", per worker

    def merge(self, other: BuiltBatch) -> None:
        self.rows.extend(other.rows)
        self.unreadable.extend(other.unreadable)
        self.unknown_models = sorted({*self.unknown_models, *other.unknown_models})
        self.degraded.extend(other.degraded)
        self.workers_replaced.extend(other.workers_replaced)


_decode_exchange = msgspec.msgpack.Decoder(Exchange).decode


class _Identify:
    def __init__(self, catalog: Mapping[str, str | None]) -> None:
        self.catalog = catalog
        self.unknown: set[str] = set()

    def __call__(self, model: str | None) -> ModelIdentity:
        if model is not None and model not in self.catalog:
            self.unknown.add(model)
        return identify_in(self.catalog, model)


def _prepare(
    record: bytes, identify: _Identify, options: BuildOptions, batch: BuiltBatch
) -> tuple[LoggedRequest, Exchanged | None] | None:
    """The record's row before its checks, or None (noted in ``batch.unreadable``)."""
    try:
        exchange = _decode_exchange(record)
        return prepare_row(exchange, identify, body_policy=options.body_policy,
                           max_body_bytes=options.max_body_bytes)  # fmt: skip
    except Exception as exc:  # one bad record never stops the batch
        batch.unreadable.append(f"{len(record)} bytes: {type(exc).__name__}: {exc}")
        return None


def build_batch(
    records: list[bytes],
    catalog: Mapping[str, str | None],
    options: BuildOptions,
    compliance: Compliance | None,
    *,
    skip: Collection[int] = (),
    on_record: Callable[[int], None] | None = None,
) -> BuiltBatch:
    """Every readable record's row, with its verdict and features; never raises per record.

    ``skip``: indexes left out (quarantined records, built apart); ``on_record(index)`` is
    called as each record's build starts (the worker's progress, for its deadline).
    """
    batch = BuiltBatch()
    identify = _Identify(catalog)
    fields = options.embedding_fields if options.drift_features else ()
    embedder = load_embedder(options.embedding_model) if fields else None  # once per process
    for index, record in enumerate(records):
        if index in skip:
            continue
        if on_record is not None:
            on_record(index)
        prepared = _prepare(record, identify, options, batch)
        if prepared is None:
            continue
        row, target = prepared
        if target is not None and compliance is not None and compliance.applies(target):
            row = with_verdict(row, compliance.check(target))
            if row.schema_verdict == Verdict.CHECK_TIMEOUT:
                batch.degraded.append(BACKTRACK_LIMIT)
        if options.drift_features:
            row = dataclasses.replace(row, features=extract_features(row).as_json())
        if embedder is not None:
            prompt, output = embed_row(row, embedder, fields)
            row = dataclasses.replace(row, prompt_embedding=prompt, output_embedding=output)
        batch.rows.append(row)
    batch.unknown_models = sorted(identify.unknown)
    return batch


def build_quarantined(
    record: bytes,
    catalog: Mapping[str, str | None],
    options: BuildOptions,
    compliance: Compliance | None,
    reason: str,
    deadline_s: float,
) -> BuiltBatch:
    """The row of a record that failed its build twice: everything but the schema check and
    the drift features, with the verdict ``check_timeout`` where a schema applied."""
    batch = BuiltBatch()
    identify = _Identify(catalog)
    prepared = _prepare(record, identify, options, batch)
    if prepared is None:
        return batch
    row, target = prepared
    if target is not None and compliance is not None and compliance.enabled:
        if compliance.applies(target):
            why = (
                f"the row's build ran past writer.record_deadline_s ({deadline_s:g} s) twice"
                if reason == CHECK_TIMEOUT
                else "the row's build killed its worker twice"
            )
            issue = SchemaIssue("/", f"{why}; logged without its schema check")
            name = compliance.schema_name(target) or "unknown"
            row = with_verdict(row, SchemaVerdict(name, Verdict.CHECK_TIMEOUT, 1, (issue,)))
    batch.rows.append(row)
    batch.degraded.append(reason)
    batch.unknown_models = sorted(identify.unknown)
    return batch
