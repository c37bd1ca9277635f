"""The ASGI interface's types, named once for every raw ASGI app here: the proxy, the fake vLLM,
the feedback routes mounted on the proxy port, and the servers that run them.

Not to be confused with :class:`sidecar.records.Scope`, which is the scope of an alert.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

ASGIScope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[ASGIMessage]]
ASGISend = Callable[[ASGIMessage], Awaitable[None]]
ASGIApp = Callable[[ASGIScope, ASGIReceive, ASGISend], Awaitable[None]]
