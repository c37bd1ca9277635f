"""``sidecar demo`` and ``sidecar fake-vllm``: the product without a GPU."""

from __future__ import annotations

import sys

import click

from sidecar.cli.common import CONTEXT


@click.command(context_settings=CONTEXT)
@click.option("--requests", default=60, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--incident", is_flag=True,
    help="Play an incident instead (~40 s): latency spike, format regression, topic drift; "
    "print each alert as it fires and clears.",
)  # fmt: skip
def demo(requests: int, incident: bool) -> None:
    """Run a fake vLLM and a sidecar in this process, send traffic, print the reports."""
    from rich.console import Console

    from sidecar.reports import render
    from sidecar.testing.demo import run_demo, run_incident_demo

    if incident:
        run_incident_demo(click.echo)
        return
    console = Console(width=None if sys.stdout.isatty() else 200)
    run_demo(requests, lambda table: render.as_text(table, console), click.echo)


@click.command("fake-vllm", context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--model",
    "served_model_name",
    default="tiny",
    show_default=True,
    help="Served base model name.",
)
@click.option("--latency-ms", default=0.0, show_default=True, help="Delay before each response.")
@click.option(
    "--chunk-delay-ms", default=0.0, show_default=True, help="Delay between stream chunks."
)
def fake_vllm(
    host: str, port: int, served_model_name: str, latency_ms: float, chunk_delay_ms: float
) -> None:
    """Run the faithful fake vLLM server (with LoRA adapters `support` and `legal`)."""
    from sidecar.fake_vllm import FakeVllmConfig, serve_fake_vllm

    config = FakeVllmConfig(
        served_model_name=served_model_name,
        latency_s=latency_ms / 1000.0,
        chunk_delay_s=chunk_delay_ms / 1000.0,
    )
    click.echo(
        f"fake vLLM serving {served_model_name} (+ adapters support, legal) on http://{host}:{port}"
    )
    serve_fake_vllm(host, port, config)
