"""Log lines that traffic cannot forge (sidecar/logs.py)."""

from __future__ import annotations

import logging

from sidecar.logs import FORMAT, NeutralFormatter


def record(message: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("sidecar.drift", logging.WARNING, __file__, 1, message, args, exc_info)  # type: ignore[arg-type]


def test_a_newline_from_traffic_cannot_start_a_log_line_of_its_own() -> None:
    forged = "tiny\n2026-12-03 08:00:00,000 CRITICAL sidecar: database wiped"
    line = NeutralFormatter(FORMAT).format(record("drift for model=%s adapter=%s", forged, "-"))
    assert "\n" not in line
    assert line.endswith("drift for model=tiny\\n2026-12-03 08:00:00,000 CRITICAL sidecar: "
                         "database wiped adapter=-")  # fmt: skip


def test_bidi_overrides_and_escape_sequences_are_shown_not_obeyed() -> None:
    line = NeutralFormatter(FORMAT).format(
        record("schema check failed for %s", "/v1/\x1b[2J\u202e")
    )
    assert line.endswith("schema check failed for /v1/\\u001b[2J\\u202e")


def test_the_sidecars_own_tracebacks_keep_their_lines() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        text = NeutralFormatter(FORMAT).format(record("round failed", exc_info=sys.exc_info()))
    assert "\nTraceback (most recent call last):\n" in text
    assert text.rstrip().endswith("ValueError: boom")
