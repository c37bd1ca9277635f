"""The ``sidecar`` command line: one module per command family, all on one click group.

Commands import what they run inside their function, so ``sidecar --help`` stays quick.
"""

from __future__ import annotations

import click

from sidecar.cli.alerts import alerts
from sidecar.cli.baseline import baseline
from sidecar.cli.common import CONTEXT
from sidecar.cli.db import db
from sidecar.cli.demo import demo, fake_vllm
from sidecar.cli.drift import drift
from sidecar.cli.export import export
from sidecar.cli.judge import judge
from sidecar.cli.report import report
from sidecar.cli.serve import check_config, serve

__all__ = ["main"]


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="vllm-sidecar", prog_name="sidecar")
def main() -> None:
    """Monitoring and drift-detection sidecar for vLLM's OpenAI-compatible server.

    Point your clients at the sidecar's proxy port instead of vLLM: every request
    is relayed unchanged and logged to Postgres (or a SQLite file by default).
    """


for command in (serve, check_config, db, report, export, alerts, judge, baseline, drift, demo,
                fake_vllm):  # fmt: skip
    main.add_command(command)
