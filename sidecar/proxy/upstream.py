"""The upstream client seam: aiohttp inside, our own errors outside.

Bodies are relayed as raw bytes: no automatic decompression, no added headers.
Errors are translated here (httpx's ``map_httpcore_exceptions`` idea): callers
see :class:`UpstreamUnreachable`, :class:`UpstreamTimeout`, :class:`UpstreamBusy` or
:class:`UpstreamReset`, raised ``from`` the original exception.

Each proxied request holds one of ``upstream.max_connections`` slots from the moment it is
sent until its response is released or aborted; waiting for a free slot is bounded by
``upstream.pool_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator

import aiohttp
from yarl import URL

from sidecar.errors import (
    UpstreamBusy,
    UpstreamReset,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from sidecar.records import ErrorKind
from sidecar.settings import UpstreamSettings

logger = logging.getLogger("sidecar.proxy")
CATALOG_CONNECTIONS = 2  # beyond the request slots, for the model list polls


def upstream_base_url(url: str) -> tuple[str, bool]:
    """The base URL requests are sent under, and whether a trailing ``/v1`` was removed.

    Clients send ``/v1/...`` paths, so ``http://host:8000/v1`` (the form OpenAI clients use for
    ``base_url``) would forward to ``/v1/v1/...``.
    """
    base = url.rstrip("/")
    if base.endswith("/v1"):
        return base.removesuffix("/v1"), True
    return base, False


def redact_url(url: str) -> str:
    """``url`` without the password of its ``user:password@`` part, for logs."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    credentials, at, host = authority.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}{slash}{path}"


@contextlib.contextmanager
def translate_errors(*, started: bool) -> Iterator[None]:
    """Map aiohttp / socket exceptions to the sidecar's upstream errors."""
    try:
        yield
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout(
            "the upstream did not answer in time", kind=ErrorKind.UPSTREAM_TIMEOUT
        ) from exc
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamUnreachable(
            f"cannot connect to the upstream: {exc.os_error.strerror or exc}",
            kind=ErrorKind.UPSTREAM_UNREACHABLE,
        ) from exc
    except (aiohttp.ClientError, ConnectionError) as exc:
        if started:
            raise UpstreamReset(
                f"the upstream broke the stream: {exc}", kind=ErrorKind.UPSTREAM_RESET
            ) from exc
        raise UpstreamUnreachable(
            f"the upstream closed the connection: {exc}", kind=ErrorKind.UPSTREAM_UNREACHABLE
        ) from exc


class UpstreamResponse:
    """An upstream response whose body has not been read yet."""

    __slots__ = ("_on_done", "_response", "raw_headers", "status")

    def __init__(
        self, response: aiohttp.ClientResponse, on_done: Callable[[], None] | None = None
    ) -> None:
        self._response = response
        self._on_done = on_done  # frees the request's connection slot (called once)
        self.status = response.status
        self.raw_headers = response.raw_headers

    @property
    def content_type(self) -> str | None:
        return self._response.headers.get("content-type")

    @property
    def content_length(self) -> int | None:
        return self._response.content_length

    async def read(self) -> bytes:
        with translate_errors(started=True):
            return await self._response.read()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive from the socket."""
        with translate_errors(started=True):
            async for chunk in self._response.content.iter_any():
                yield chunk

    def release(self) -> None:
        """Return the connection to the pool (the body was read to the end)."""
        self._response.release()
        self._done()

    def abort(self) -> None:
        """Close the connection so the upstream sees the client go away (frees the GPU)."""
        self._response.close()
        self._done()

    @property
    def finished(self) -> bool:
        """Released or aborted: the connection slot is free again."""
        return self._on_done is None

    def _done(self) -> None:
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            on_done()


class UpstreamClient:
    """A pooled HTTP/1.1 client for one upstream base URL."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self.base_url, stripped = upstream_base_url(settings.url)
        if stripped:
            logger.info(
                "upstream.url %s ends in /v1: forwarding under %s (clients' paths carry /v1)",
                redact_url(settings.url), redact_url(self.base_url),
            )  # fmt: skip
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(settings.max_connections)
        self.in_use = 0  # request slots held now
        self.waiting = 0  # requests waiting for a slot

    @property
    def saturated(self) -> bool:
        """No request slot is free: a new request would wait (``/readyz`` says so)."""
        return self.in_use >= self.settings.max_connections

    async def start(self) -> None:
        limit = self.settings.max_connections + CATALOG_CONNECTIONS
        connector = aiohttp.TCPConnector(
            limit=limit,
            limit_per_host=limit,
            keepalive_timeout=30,
            ttl_dns_cache=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.settings.connect_timeout_s,
                sock_read=self.settings.read_timeout_s,
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url_for(self, raw_path: bytes, query: bytes) -> URL:
        path = raw_path.decode("latin-1")
        target = (
            f"{self.base_url}{path}?{query.decode('latin-1')}" if query else self.base_url + path
        )
        return URL(target, encoded=True)

    async def send(
        self, method: str, raw_path: bytes, query: bytes, headers: dict[str, str], body: bytes
    ) -> UpstreamResponse:
        """Send a request and return once the upstream's status line and headers arrived.

        The returned response holds a connection slot until it is released or aborted.
        """
        assert self._session is not None, "UpstreamClient.start() was not awaited"
        await self._take_slot()
        try:
            with translate_errors(started=False):
                response = await self._session.request(
                    method,
                    self.url_for(raw_path, query),
                    headers=headers,
                    data=body if body else None,
                    allow_redirects=False,
                    compress=None,
                )
        except BaseException:
            self._free_slot()
            raise
        return UpstreamResponse(response, self._free_slot)

    async def _take_slot(self) -> None:
        if not self._slots.locked():  # a free slot: taken at once, no timer needed
            await self._slots.acquire()
            self.in_use += 1
            return
        self.waiting += 1
        try:
            async with asyncio.timeout(self.settings.pool_timeout_s):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise UpstreamBusy(
                f"all {self.settings.max_connections} upstream connections stayed busy for "
                f"{self.settings.pool_timeout_s:g} s (upstream.max_connections, "
                "upstream.pool_timeout_s): retry later",
                kind=ErrorKind.UPSTREAM_BUSY,
            ) from exc
        finally:
            self.waiting -= 1
        self.in_use += 1

    def _free_slot(self) -> None:
        self.in_use -= 1
        self._slots.release()

    async def get_json(self, path: str, *, timeout_s: float = 5.0) -> object:
        """GET a small JSON document (used for ``/v1/models``); raises UpstreamError."""
        assert self._session is not None, "UpstreamClient.start() was not awaited"
        headers = (
            {"authorization": f"Bearer {self.settings.api_key}"} if self.settings.api_key else {}
        )
        with translate_errors(started=False):
            async with (
                asyncio.timeout(timeout_s),
                self._session.get(self.base_url + path, headers=headers) as response,
            ):
                if response.status != 200:
                    raise UpstreamUnreachable(
                        f"GET {path} answered {response.status}", kind=ErrorKind.UPSTREAM_ERROR
                    )
                return await response.json(content_type=None)
