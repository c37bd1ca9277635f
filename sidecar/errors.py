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


class StoreUnavailable(SidecarError):
    """The database cannot be reached right now; the caller should retry later."""
