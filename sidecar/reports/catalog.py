"""Import the built-in reports so they register themselves."""

from __future__ import annotations


def load_reports() -> None:
    from sidecar.reports import compliance, cost, drift, quality, traffic  # noqa: F401
