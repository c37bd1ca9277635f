"""The one time window every stage reads: ``[since, until)``, optionally narrowed to a model.

Alerts read the last ``window_s`` before now, reports and the CLI a ``--since``/``--until``
range, the judge's batch its lookback, drift a reference and a current window: all of them are
a :class:`TimeWindow`, and the store turns one into the same ``WHERE`` (``store.windows``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """``since`` inclusive, ``until`` exclusive (aware UTC datetimes). ``model`` and ``adapter``
    narrow it when given; None (or empty) means every model, every adapter."""

    since: datetime
    until: datetime
    model: str | None = None
    adapter: str | None = None

    @classmethod
    def last(cls, seconds: float, now: datetime) -> TimeWindow:
        """The ``seconds`` before ``now``: ``[now - seconds, now)``."""
        return cls(now - timedelta(seconds=seconds), now)

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()
