"""A webhook receiver for tests and demos: records every POST, answers from a script per path."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from sidecar.testing.servers import read_body


@dataclass
class WebhookSink:
    """ASGI app. ``script[path]`` is a queue of (status, body, headers); empty means 200 ``ok``."""

    received: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    arrived: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # monotonic
    script: dict[str, deque[tuple[int, str, dict[str, str]]]] = field(
        default_factory=lambda: defaultdict(deque)
    )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        path = scope["path"]
        self.received[path].append(orjson.loads(body) if body else None)
        self.arrived[path].append(time.monotonic())
        status, text, headers = (
            self.script[path].popleft() if self.script[path] else (200, "ok", {})
        )
        raw_headers = [
            (b"content-type", b"text/plain"),
            *((k.encode(), v.encode()) for k, v in headers.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": text.encode()})
