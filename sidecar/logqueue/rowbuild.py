"""Spool records -> finished ``requests`` rows, as one pure step that can run in another process.

Decoding, SSE reassembly, the body policy, the schema verdict and the drift features are the
writer's CPU work (a few hundred microseconds a row, mostly pure Python). Done in a worker
process (:mod:`sidecar.logqueue.rowworkers`) they leave the proxy's event loop alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from sidecar.drift.features import extract_features
from sidecar.logqueue.rows import prepare_row, with_verdict
from sidecar.proxy.catalog import ModelIdentity, identify_in
from sidecar.records import Exchange, LoggedRequest
from sidecar.validators.compliance import Compliance


@dataclass(frozen=True, slots=True)
class BuildOptions:
    body_policy: str
    max_body_bytes: int
    drift_features: bool


@dataclass(slots=True)
class BuiltBatch:
    rows: list[LoggedRequest] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # why each dropped record was unreadable
    unknown_models: list[str] = field(default_factory=list)  # not in the catalog snapshot


_decode_exchange = msgspec.msgpack.Decoder(Exchange).decode


def build_batch(
    records: list[bytes],
    catalog: Mapping[str, str | None],
    options: BuildOptions,
    compliance: Compliance | None,
) -> BuiltBatch:
    """Every readable record's row, with its verdict and features; never raises per record."""
    batch = BuiltBatch()
    unknown: set[str] = set()

    def identify(model: str | None) -> ModelIdentity:
        if model is not None and model not in catalog:
            unknown.add(model)
        return identify_in(catalog, model)

    for record in records:
        try:
            exchange = _decode_exchange(record)
            row, target = prepare_row(
                exchange, identify, body_policy=options.body_policy,
                max_body_bytes=options.max_body_bytes,
            )  # fmt: skip
        except Exception as exc:
            batch.unreadable.append(f"{len(record)} bytes: {type(exc).__name__}: {exc}")
            continue
        if target is not None and compliance is not None and compliance.applies(target):
            row = with_verdict(row, compliance.check(target))
        if options.drift_features:
            row = dataclasses.replace(row, features=extract_features(row).as_json())
        batch.rows.append(row)
    batch.unknown_models = sorted(unknown)
    return batch
