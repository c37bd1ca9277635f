"""``sidecar demo``: the whole loop in one process, reports printed."""

from __future__ import annotations

from click.testing import CliRunner

from sidecar.cli import main


def test_demo_runs_the_whole_loop_and_prints_reports() -> None:
    result = CliRunner().invoke(main, ["demo", "--requests", "12"])
    assert result.exit_code == 0, result.output
    for title in ("Traffic", "Latency", "Format compliance", "User feedback"):
        assert title in result.output
    assert "sent 12 requests" in result.output
