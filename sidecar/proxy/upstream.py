"""The upstream client seam: aiohttp inside, our own errors outside.

Bodies are relayed as raw bytes: no automatic decompression, no added headers.
Errors are translated here (httpx's ``map_httpcore_exceptions`` idea): callers
see :class:`UpstreamUnreachable`, :class:`UpstreamTimeout` or
:class:`UpstreamReset`, raised ``from`` the original exception.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
from yarl import URL

from sidecar.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable
from sidecar.records import ErrorKind
from sidecar.settings import UpstreamSettings


class UpstreamReset(UpstreamError):
    """The upstream closed or broke the connection after the response started."""

    status = 502
    error_type = "BadGateway"


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

    __slots__ = ("_response", "raw_headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
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

    def abort(self) -> None:
        """Close the connection so the upstream sees the client go away (frees the GPU)."""
        self._response.close()


class UpstreamClient:
    """A pooled HTTP/1.1 client for one upstream base URL."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self.base_url = settings.url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.settings.max_connections,
            limit_per_host=self.settings.max_connections,
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
        """Send a request and return once the upstream's status line and headers arrived."""
        assert self._session is not None, "UpstreamClient.start() was not awaited"
        with translate_errors(started=False):
            response = await self._session.request(
                method,
                self.url_for(raw_path, query),
                headers=headers,
                data=body if body else None,
                allow_redirects=False,
                compress=None,
            )
        return UpstreamResponse(response)

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
