"""The settings object and its serving sections (upstream, proxy, admin, metrics).

One frozen struct per YAML section, every key optional with a safe default. Each field carries
its constraint (:mod:`.values`) and its description: docs/configuration.md is generated from
them (``make docs``). The log path's sections are in :mod:`.recording`, the checks' in
:mod:`.monitoring`, the judge's and the cost report's in :mod:`.judging`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from sidecar.settings.checks import check_values
from sidecar.settings.judging import CostSettings, JudgeSettings
from sidecar.settings.monitoring import AlertSettings, ComplianceSettings, DriftSettings
from sidecar.settings.recording import (
    DatabaseSettings,
    RequestLogSettings,
    SpoolSettings,
    WriterSettings,
)
from sidecar.settings.values import HttpUrl, MiB, Port, PositiveFloat, PositiveInt, Section

DEFAULT_UPSTREAM_URL = "http://127.0.0.1:8000"


class UpstreamSettings(Section, frozen=True):
    """The model server behind the proxy: vLLM or any OpenAI-compatible server."""

    url: Annotated[
        HttpUrl,
        Meta(
            description=(
                "Base URL of vLLM (or any OpenAI-compatible server). Env: `SIDECAR_UPSTREAM_URL`. "
                "A trailing `/v1` (the form OpenAI clients use for `base_url`) is removed, since "
                "clients' paths carry it, and the start says so once (`upstream.url "
                "http://vllm:8000/v1 ends in /v1: forwarding under http://vllm:8000`). A password "
                "in it is shown as `***` in logs."
            )
        ),
    ] = DEFAULT_UPSTREAM_URL
    api_key: Annotated[
        str | None,
        Meta(
            description=(
                "When set, replaces the client's `Authorization` with `Bearer <key>` upstream. "
                "When unset, the client's header passes through."
            )
        ),
    ] = None
    connect_timeout_s: Annotated[
        PositiveFloat,
        Meta(
            description=(
                "Time to open a TCP connection to the upstream; past it the client gets `502`."
            )
        ),
    ] = 5.0
    read_timeout_s: Annotated[
        PositiveFloat,
        Meta(
            description=(
                "Longest silence while waiting for the upstream (headers or the next stream "
                "chunk); past it the client gets `504` (or, mid-stream, a dropped connection)."
            )
        ),
    ] = 600.0
    max_connections: Annotated[
        PositiveInt,
        Meta(
            description=(
                "Pooled keep-alive connections to the upstream. Each proxied request holds one "
                "from sending until its response is relayed to the end (or dropped); `/readyz` "
                "reports `upstream_pool: saturated` while none is free."
            )
        ),
    ] = 512
    pool_timeout_s: Annotated[
        PositiveFloat,
        Meta(
            description=(
                "Longest wait for a free upstream connection; past it the client gets `503` "
                "`ServiceUnavailableError` (OpenAI clients retry it) and the row `error_kind = "
                "upstream_busy`."
            )
        ),
    ] = 10.0
    models_refresh_s: Annotated[
        PositiveFloat,
        Meta(
            description=(
                "How often `/v1/models` is read to tell LoRA adapters (cards with a `parent`) from "
                "base models. Loading or unloading an adapter through the sidecar refreshes at "
                "once."
            )
        ),
    ] = 30.0


class ProxySettings(Section, frozen=True):
    """The port clients call instead of vLLM: every path except `/sidecar/` is forwarded."""

    host: Annotated[
        str,
        Meta(
            description=(
                "Proxy listen address: `0.0.0.0` takes clients from any interface, `127.0.0.1` "
                "only from this host."
            )
        ),
    ] = "0.0.0.0"
    port: Annotated[
        Port,
        Meta(
            description=(
                "Proxy port: every path except `/sidecar/` is forwarded. `0` picks a free port."
            )
        ),
    ] = 8080
    max_body_bytes: Annotated[
        PositiveInt,
        Meta(
            description=(
                "Largest request body accepted; larger ones get `413` without reaching the "
                "upstream."
            )
        ),
    ] = 32 * MiB
    inject_stream_usage: Annotated[
        bool,
        Meta(
            description=(
                "Ask vLLM for the usage chunk on streams whose client did not, to log token "
                "counts; the sidecar hides that chunk so the client sees exactly what vLLM would "
                "have sent."
            )
        ),
    ] = True
    max_capture_bytes: Annotated[
        PositiveInt,
        Meta(
            description=(
                "Most response bytes kept for the log per request. What is kept is at most "
                "`request_log.max_body_bytes` (what a row can store) plus the last 64 KiB; a "
                "response known to be longer than that keeps only its first and last 64 KiB "
                "(enough for the id, model, tokens, finish reason and time to first token; such an "
                "output is not checked against a schema). Everything is relayed to the client."
            )
        ),
    ] = 16 * MiB
    head_timeout_s: Annotated[
        PositiveFloat,
        Meta(
            description=(
                "A connection must send a complete request line and headers within this many "
                "seconds of opening (or of the first byte of a later request on it): a partial "
                "head gets `408`, a connection that sent nothing is closed."
            )
        ),
    ] = 30.0
    body_timeout_s: Annotated[
        PositiveFloat,
        Meta(
            description=(
                "A request body must arrive within this many seconds once its headers are in (and "
                "the rest of it within as long again after its first part); one that does not "
                "gets `408` `BadRequestError` and is logged with `error_kind = bad_request`."
            )
        ),
    ] = 60.0
    write_timeout_s: Annotated[
        PositiveFloat,
        Meta(
            description=(
                "A client that reads nothing of its response for this long is dropped; the "
                "upstream request is cancelled and its connection freed; the row has `error_kind = "
                "client_too_slow`."
            )
        ),
    ] = 60.0
    max_client_connections: Annotated[
        PositiveInt,
        Meta(
            description=(
                "Client connections served at once on the proxy port; past it a new connection "
                "gets `503` `ServiceUnavailableError` and is closed. Lowered at start when the "
                "descriptor limit is too small to also hold the upstream pool, the database and "
                "the admin port (logged). The sidecar raises its descriptor soft limit to the hard "
                "limit at start (`descriptors: soft limit raised 1024 -> 524288` in the start "
                "line)."
            )
        ),
    ] = 4096
    max_buffered_response_bytes: Annotated[
        PositiveInt,
        Meta(
            description=(
                "A non-streaming response with a `Content-Length` up to this size is read whole "
                "from the upstream and sent to the client in one piece; a larger one, or one "
                "without a length, is relayed chunk by chunk as it arrives."
            )
        ),
    ] = 4 * MiB


class AdminSettings(Section, frozen=True):
    """The admin port: `/metrics`, `/healthz`, `/readyz`, reports and alerts over HTTP."""

    host: Annotated[
        str,
        Meta(
            description=(
                "Admin listen address (`/metrics`, `/healthz`, `/readyz`). Use `0.0.0.0` so "
                "Prometheus can scrape from another host."
            )
        ),
    ] = "127.0.0.1"
    port: Annotated[
        Port,
        Meta(
            description=("Admin port, where Prometheus scrapes `/metrics`. `0` picks a free port.")
        ),
    ] = 8081
    token: Annotated[
        str | None,
        Meta(
            description=(
                "When set, admin routes except `/healthz` and `/readyz` need `Authorization: "
                "Bearer <token>`."
            )
        ),
    ] = None


class MetricsSettings(Section, frozen=True):
    """The Prometheus metrics on the admin port (docs/metrics.md)."""

    max_label_values: Annotated[
        PositiveInt,
        Meta(
            description=(
                "Label slots for model names (and for schema names): the models the upstream "
                "serves (and the configured schemas) keep their own label first; names clients "
                "make up share what is left, then count as `other` (docs/metrics.md)."
            )
        ),
    ] = 50


class Settings(Section, frozen=True):
    """Every section; built once by :func:`sidecar.settings.load_settings`."""

    upstream: UpstreamSettings = msgspec.field(default_factory=UpstreamSettings)
    proxy: ProxySettings = msgspec.field(default_factory=ProxySettings)
    admin: AdminSettings = msgspec.field(default_factory=AdminSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    request_log: RequestLogSettings = msgspec.field(default_factory=RequestLogSettings)
    spool: SpoolSettings = msgspec.field(default_factory=SpoolSettings)
    writer: WriterSettings = msgspec.field(default_factory=WriterSettings)
    compliance: ComplianceSettings = msgspec.field(default_factory=ComplianceSettings)
    cost: CostSettings = msgspec.field(default_factory=CostSettings)
    alerts: AlertSettings = msgspec.field(default_factory=AlertSettings)
    judge: JudgeSettings = msgspec.field(default_factory=JudgeSettings)
    drift: DriftSettings = msgspec.field(default_factory=DriftSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"],
        Meta(description="The sidecar's log level: `debug`, `info`, `warning` or `error`."),
    ] = "info"

    def __post_init__(self) -> None:
        check_values(self)  # the few checks that span keys
