"""The sidecar's own exceptions: a small hierarchy, translated at each seam."""

from __future__ import annotations


class SidecarError(Exception):
    """Base class for errors raised by the sidecar itself."""


class ConfigError(SidecarError):
    """The configuration is invalid; the message names the key and the fix."""


class UpstreamError(SidecarError):
    """The upstream model server could not be used. ``status`` is what the client gets."""

    status = 502
    error_type = "BadGateway"

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class UpstreamUnreachable(UpstreamError):
    status = 502
    error_type = "BadGateway"


class UpstreamTimeout(UpstreamError):
    status = 504
    error_type = "GatewayTimeout"


class UpstreamReset(UpstreamError):
    """The upstream closed or broke the connection after the response started."""

    status = 502
    error_type = "BadGateway"


class UpstreamBusy(UpstreamError):
    """Every upstream connection slot stayed in use for ``upstream.pool_timeout_s``."""

    status = 503
    error_type = "ServiceUnavailableError"


class StoreUnavailable(SidecarError):
    """The database cannot be reached right now; the caller should retry later."""


class JudgeError(SidecarError):
    """A judge call failed; ``kind`` is the metric label (unavailable, rejected, reply)."""

    kind = "unavailable"

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts  # calls made, for the daily budget


class JudgeUnavailable(JudgeError):
    """Down, timing out, 5xx or rate-limited past the retries: try again next round."""

    kind = "unavailable"


class JudgeRejected(JudgeError):
    """A 4xx other than 429 (bad key, unknown model, bad request): retrying will not help."""

    kind = "rejected"
