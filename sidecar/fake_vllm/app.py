"""A faithful fake of vLLM 0.32.0's OpenAI-compatible server, as a plain ASGI app.

It answers like the captured server (``reference/vllm-api.md``): bodies, SSE framing, errors,
``/v1/models``, runtime LoRA, auth and ``/metrics``. Tests drive faults per request through
``x-fake-*`` headers (see :mod:`sidecar.fake_vllm.outputs`) or through ``.config``.
No framework: a route table, orjson and prebuilt constants, so it can be the upstream of a
benchmark at thousands of requests per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn

from sidecar.asgi_types import ASGIReceive, ASGIScope, ASGISend
from sidecar.fake_vllm import admin
from sidecar.fake_vllm.admin import RouteRequest
from sidecar.fake_vllm.bodies import (
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    UNAUTHORIZED,
    ApiError,
    ChoiceOutput,
    Endpoint,
    ResponseMeta,
    completion_tokens,
    malformed_event,
    response_body,
    status_error,
    stream_events,
)
from sidecar.fake_vllm.config import FakeVllmConfig
from sidecar.fake_vllm.http import (
    EVENT_STREAM,
    VARY,
    Header,
    Reply,
    abort_connection,
    find_header,
    header_dict,
    read_body,
    reply,
    wait_for_disconnect,
)
from sidecar.fake_vllm.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from sidecar.fake_vllm.metrics import FakeVllmMetrics
from sidecar.fake_vllm.outputs import Knobs, plan_choices, read_knobs
from sidecar.fake_vllm.requests import GenerationRequest, parse_generation_request
from sidecar.fake_vllm.text import fingerprint
from sidecar.server.asgi import uvicorn_config

__all__ = ["FakeVllm", "FakeVllmConfig", "create_fake_vllm", "serve_fake_vllm"]

GUARDED_PREFIXES = ("/v1", "/v2", "/inference", "/cohere")
GENERATION: dict[str, Endpoint] = {"/v1/chat/completions": "chat", "/v1/completions": "completion"}
ID_PREFIX: dict[Endpoint, str] = {"chat": "chatcmpl-", "completion": "cmpl-"}
LORA_PATHS = frozenset({"/v1/load_lora_adapter", "/v1/unload_lora_adapter"})
RESET_SETTLE_S = 2.0
YIELD_EVERY_EVENTS = 8

Handler = Callable[[RouteRequest], Reply]


@dataclass(frozen=True, slots=True)
class Route:
    methods: frozenset[str]
    handler: Handler

    @property
    def allow(self) -> bytes:
        return ", ".join(sorted(self.methods)).encode()


class FakeVllm:
    """The ASGI app. ``config`` may be changed while serving; the counters are for tests.

    ``requests_started`` counts POSTs to the two generation routes (whatever their outcome);
    ``requests_cancelled`` counts those whose client went away before the fake finished.
    """

    def __init__(self, config: FakeVllmConfig) -> None:
        self.config = config
        self.requests_started = 0
        self.requests_cancelled = 0
        self.last_request_headers: dict[str, str] | None = None
        self.last_request_body: bytes | None = None
        self.metrics = FakeVllmMetrics(config.max_model_len)
        self.metrics.series(config.served_model_name)
        self._faults = random.Random(config.seed)
        self._ids = random.Random()
        self._next_output = 0
        get, post, both = (
            frozenset({"GET", "HEAD"}),
            frozenset({"POST"}),
            frozenset({"GET", "HEAD", "POST"}),
        )
        self._routes: dict[str, Route] = {
            "/v1/chat/completions": Route(post, admin.health),  # POST is dispatched before
            "/v1/completions": Route(post, admin.health),
            "/v1/models": Route(get, admin.models),
            "/v1/load_lora_adapter": Route(post, admin.load_adapter),
            "/v1/unload_lora_adapter": Route(post, admin.unload_adapter),
            "/health": Route(get, admin.health),
            "/ping": Route(both, admin.health),
            "/version": Route(get, admin.version),
            "/load": Route(get, admin.load),
            "/metrics": Route(get, self._metrics),
            "/tokenize": Route(post, admin.tokenize),
            "/detokenize": Route(post, admin.detokenize_tokens),
        }

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        config = self.config
        extra = self._request_id_echo(scope) if config.enable_request_id_headers else ()
        endpoint = GENERATION.get(path)
        body = b""
        headers: dict[str, str] = {}
        if endpoint is not None and method == "POST":
            body = await read_body(receive)
            headers = header_dict(scope)
            self.requests_started += 1
            self.last_request_headers = headers
            self.last_request_body = body
        if config.api_key is not None and method != "OPTIONS" and path.startswith(GUARDED_PREFIXES):
            if not _authorized(find_header(scope, b"authorization"), config.api_key):
                await reply(send, 401, UNAUTHORIZED, extra=extra)
                return
        if endpoint is not None and method == "POST":
            await self._generate(endpoint, body, headers, receive, send, extra)
            return
        route = self._route(path)
        if route is None:
            await reply(send, 404, NOT_FOUND, extra=extra)
        elif method not in route.methods:
            await reply(send, 405, METHOD_NOT_ALLOWED, extra=((b"allow", route.allow), *extra))
        else:
            await self._route_reply(route, scope, receive, send, extra)

    def _route(self, path: str) -> Route | None:
        if path in LORA_PATHS and not self.config.allow_runtime_lora:
            return None
        route = self._routes.get(path)
        if route is None and path.startswith("/metrics/"):
            return self._routes["/metrics"]
        return route

    def _request_id_echo(self, scope: ASGIScope) -> tuple[Header, ...]:
        given = find_header(scope, b"x-request-id")
        return ((b"x-request-id", given if given is not None else uuid.uuid4().hex.encode()),)

    def _random_hex(self) -> str:
        return f"{self._ids.getrandbits(64):016x}"

    # generation -------------------------------------------------------------------------------

    async def _generate(
        self, endpoint: Endpoint, body: bytes, headers: dict[str, str],
        receive: ASGIReceive, send: ASGISend, extra: tuple[Header, ...],
    ) -> None:  # fmt: skip
        started = time.perf_counter()
        config = self.config
        knobs = read_knobs(headers, config)
        if isinstance(knobs, ApiError):
            await reply(send, knobs.status, knobs.body(), extra=extra)
            return
        injected = knobs.status
        if injected is None and config.error_rate > 0 and self._faults.random() < config.error_rate:
            injected = 500
        if injected is not None:
            await self._inject(injected, knobs, receive, send, extra)
            return
        request = parse_generation_request(
            endpoint, headers.get("content-type"), body, config.served_model_name,
            config.lora_modules, config.max_model_len,
        )  # fmt: skip
        if isinstance(request, ApiError):
            await reply(send, request.status, request.body(), extra=extra)
            return
        choices = self._plan(request, knobs)
        meta = ResponseMeta(
            endpoint, self._response_id(endpoint, headers, request), int(time.time()), request.model,
            fingerprint(config.version, config.served_model_name, config.seed), request.prompt_tokens,
        )  # fmt: skip
        series = self.metrics.series(config.served_model_name)
        series.running.inc()
        watcher = _watch(receive) if knobs.latency_s > 0 or request.stream else None
        try:
            if (
                watcher is not None
                and knobs.latency_s > 0
                and await _client_left(watcher, knobs.latency_s)
            ):
                self.requests_cancelled += 1
                return
            if watcher is not None and request.stream:
                first_token_at = await self._stream(
                    meta, choices, request, knobs, send, extra, watcher
                )
                if first_token_at is None:
                    return
            else:
                await reply(send, 200, response_body(meta, choices), extra=extra)
                first_token_at = time.perf_counter()
        finally:
            series.running.dec()
            if watcher is not None:
                watcher.cancel()
        self.metrics.record_finished(
            config.served_model_name, request.prompt_tokens, completion_tokens(choices),
            choices[0].finish_reason, time.perf_counter() - started, first_token_at - started,
        )  # fmt: skip

    async def _inject(
        self,
        status: int,
        knobs: Knobs,
        receive: ASGIReceive,
        send: ASGISend,
        extra: tuple[Header, ...],
    ) -> None:
        """Answer ``status`` in vLLM's error shape, after the configured latency."""
        if knobs.latency_s > 0:
            watcher = _watch(receive)
            try:
                if await _client_left(watcher, knobs.latency_s):
                    self.requests_cancelled += 1
                    return
            finally:
                watcher.cancel()
        body = UNAUTHORIZED if status == 401 else status_error(status).body()
        await reply(send, status, body, extra=extra)

    def _plan(self, request: GenerationRequest, knobs: Knobs) -> list[ChoiceOutput]:
        config = self.config
        count = len(request.prompts) * request.n
        canned: list[str | None] = []
        if knobs.output is not None:
            canned = [knobs.output] * count
        elif config.outputs:
            outputs = config.outputs
            canned = [outputs[(self._next_output + i) % len(outputs)] for i in range(count)]
            self._next_output += count
        return plan_choices(
            request, canned, tool_call=knobs.tool_call, default_max_tokens=config.default_max_tokens,
            seed=config.seed, new_tool_call_id=lambda: f"chatcmpl-tool-{self._random_hex()}",
        )  # fmt: skip

    def _response_id(
        self, endpoint: Endpoint, headers: dict[str, str], request: GenerationRequest
    ) -> str:
        """``chatcmpl-<X-Request-Id>``, else ``chatcmpl-<body request_id>``, else 16 random hex."""
        base = headers.get("x-request-id") or request.request_id or self._random_hex()
        return ID_PREFIX[endpoint] + base

    async def _stream(
        self, meta: ResponseMeta, choices: list[ChoiceOutput], request: GenerationRequest,
        knobs: Knobs, send: ASGISend, extra: tuple[Header, ...], watcher: asyncio.Future[None],
    ) -> float | None:  # fmt: skip
        """Send the SSE events; the time of the first token, or None if it did not finish."""
        events = stream_events(
            meta,
            choices,
            include_usage=request.include_usage,
            continuous_usage=request.continuous_usage,
        )
        if knobs.malformed_sse:
            events.insert(1, malformed_event(events[0]))
        first_token_event = len(choices) if meta.endpoint == "chat" else 0
        first_token_at = 0.0
        await send(
            {"type": "http.response.start", "status": 200, "headers": [EVENT_STREAM, VARY, *extra]}
        )
        for position, event in enumerate(events):
            if position == knobs.reset_after_chunks:
                if abort_connection(send):
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(watcher), RESET_SETTLE_S)
                return None
            if position and knobs.chunk_delay_s > 0:
                await asyncio.wait({watcher}, timeout=knobs.chunk_delay_s)
            elif position % YIELD_EVERY_EVENTS == 0:
                await asyncio.sleep(0)  # let the watcher see a disconnect in a zero-delay stream
            if watcher.done():
                self.requests_cancelled += 1
                return None
            await send({"type": "http.response.body", "body": event, "more_body": True})
            if position == first_token_event:
                first_token_at = time.perf_counter()
        watcher.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return first_token_at

    async def _route_reply(
        self,
        route: Route,
        scope: ASGIScope,
        receive: ASGIReceive,
        send: ASGISend,
        extra: tuple[Header, ...],
    ) -> None:
        body = await read_body(receive) if scope["method"] == "POST" else b""
        context = RouteRequest(
            self.config, _content_type(scope), body, int(time.time()), self._random_hex
        )
        answer = route.handler(context)
        await reply(send, answer.status, answer.body, answer.content_type, extra)

    def _metrics(self, request: RouteRequest) -> Reply:
        return Reply(200, self.metrics.exposition(), (b"content-type", METRICS_CONTENT_TYPE))


def _content_type(scope: ASGIScope) -> str | None:
    value = find_header(scope, b"content-type")
    return value.decode("latin-1") if value is not None else None


def _authorized(header: bytes | None, api_key: str) -> bool:
    """vLLM 0.32.0: ``<scheme> <token>``, scheme case-insensitive, constant-time compare."""
    if header is None:
        return False
    scheme, _, token = header.decode("latin-1").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), api_key.encode())


def _watch(receive: ASGIReceive) -> asyncio.Future[None]:
    return asyncio.ensure_future(wait_for_disconnect(receive))


async def _client_left(watcher: asyncio.Future[None], wait_s: float) -> bool:
    """Wait up to ``wait_s``; True if the client disconnected meanwhile."""
    await asyncio.wait({watcher}, timeout=wait_s)
    return watcher.done()


async def _lifespan(receive: ASGIReceive, send: ASGISend) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_fake_vllm(config: FakeVllmConfig | None = None) -> FakeVllm:
    return FakeVllm(config if config is not None else FakeVllmConfig())


def serve_fake_vllm(host: str, port: int, config: FakeVllmConfig | None = None) -> None:
    """Serve the fake on ``host:port`` until interrupted (``sidecar fake-vllm``)."""
    server = uvicorn.Server(uvicorn_config(create_fake_vllm(config), host=host, port=port))
    server.run()
