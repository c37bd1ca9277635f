"""The ASGI server plumbing: listening sockets, uvicorn settings, the event loop (uvloop)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket; ``port=0`` lets the kernel pick a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed (as in production), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def uvicorn_config(app: Any, **kwargs: Any) -> uvicorn.Config:
    """The uvicorn settings the sidecar uses in production (uvloop + httptools when present)."""
    kwargs.setdefault("log_level", "warning")
    kwargs.setdefault("access_log", False)
    kwargs.setdefault("lifespan", "auto")
    http = kwargs.pop("http", None) or _http_protocol()
    return uvicorn.Config(app, loop="auto", http=http, **kwargs)


def _http_protocol() -> Any:
    """httptools (bounded request heads) when installed, as in production; else uvicorn's pick."""
    try:
        from sidecar.server.http_head import BoundedHttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is a dependency
        return "auto"
    return BoundedHttpToolsProtocol
