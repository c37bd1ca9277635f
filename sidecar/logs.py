"""Log output that traffic cannot forge: every message's control characters, line separators
and bidi overrides are shown as escapes (a newline as backslash-n), so a model name or a path
with ``%0A`` in it cannot start a line that looks like the sidecar's own. Tracebacks, which the
sidecar writes itself, keep their lines."""

from __future__ import annotations

import logging
import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def neutral(text: str) -> str:
    """``text`` with control characters, line separators and bidi controls as visible escapes."""
    return _UNSAFE.sub(lambda match: _SHORT.get(match[0]) or f"\\u{ord(match[0]):04x}", text)


class NeutralFormatter(logging.Formatter):
    """A formatter whose messages are :func:`neutral`; the exception text is left as it is."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return neutral(super().formatMessage(record))


def configure_logging(level: str) -> None:
    """One handler on the root logger, writing neutral lines to stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(NeutralFormatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
