"""``sidecar demo``: a fake vLLM, a sidecar in front of it, some traffic, then the reports.

Everything runs in this process on free ports with a throwaway SQLite file, so a newcomer sees
the whole loop (proxy -> log -> compliance -> feedback -> reports) in a few seconds.
``sidecar demo --incident`` plays the incident script of :mod:`sidecar.testing.incident`
instead (about 40 s): a latency spike, a format regression and a topic drift, each alert firing
to a webhook receiver and clearing, as tests/scenarios/test_incident.py checks.
"""

from __future__ import annotations

import contextlib
import io
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx
import openai
import orjson
import yaml

from sidecar.fake_vllm import create_fake_vllm
from sidecar.records import TimeWindow
from sidecar.reports.base import ReportTable, run_report
from sidecar.reports.catalog import load_reports
from sidecar.settings import Settings, load_settings
from sidecar.testing.harness import RunningSidecar, start_sidecar
from sidecar.testing.incident import Incident, IncidentTraffic, incident_sections, notices
from sidecar.testing.servers import start_server
from sidecar.testing.webhook_sink import WebhookSink

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
GOOD = {"category": "billing", "priority": 2, "sentiment": "negative",
        "summary": "Charged twice for the March invoice", "needs_human": True}  # fmt: skip
OUTPUTS = [
    orjson.dumps(GOOD).decode(),
    orjson.dumps({**GOOD, "priority": 9}).decode(),  # out of range: invalid
    "Sure! I think this is a billing problem.",  # not JSON: unparseable
]
QUESTIONS = ["I was charged twice", "The app crashes on login", "How do I export my data?"]


def demo_settings(workdir: Path, upstream_url: str, **sections: dict[str, Any]) -> Settings:
    return load_settings(env={}, overrides={
        "proxy": {"host": "127.0.0.1", "port": 0}, "admin": {"port": 0},
        "upstream": {"url": upstream_url, "models_refresh_s": 1.0},
        "database": {"url": f"sqlite:///{workdir}/demo.db"},
        "spool": {"dir": str(workdir / "spool")},
        "writer": {"workers": 0},
        "compliance": {"schemas_dir": str(SCHEMAS),
                       "rules": [{"schema": "support_triage", "adapter": "support"}]},
        **sections,
    })  # fmt: skip


def send_traffic(sidecar: RunningSidecar, requests: int, say: Callable[[str], None]) -> None:
    client = openai.OpenAI(base_url=f"{sidecar.proxy_url}/v1", api_key="demo", max_retries=0)
    chance = random.Random(7)
    for n in range(requests):
        adapter = chance.choice(["support", "support", "legal", "tiny"])
        messages: Any = [{"role": "user", "content": chance.choice(QUESTIONS)}]
        headers = {"x-fake-output": chance.choice(OUTPUTS)} if adapter == "support" else {}
        if n % 4 == 0:
            stream = client.chat.completions.create(model=adapter, messages=messages, stream=True,
                                                    max_tokens=64, extra_headers=headers)  # fmt: skip
            for _ in stream:
                pass
            continue
        raw = client.chat.completions.with_raw_response.create(
            model=adapter, messages=messages, max_tokens=64, extra_headers=headers
        )
        if n % 3 == 0:
            httpx.post(f"{sidecar.proxy_url}/sidecar/v1/feedback", json={
                "request_id": raw.headers["x-request-id"], "rating": chance.choice(["up", "down", 4]),
                "user": f"user-{n % 5}"})  # fmt: skip
    say(
        f"sent {requests} requests through {sidecar.proxy_url} (chat, streams, 3 adapters, feedback)"
    )


def run_demo(
    requests: int, show: Callable[[ReportTable], None], say: Callable[[str], None]
) -> None:
    load_reports()
    with tempfile.TemporaryDirectory(prefix="sidecar-demo-") as tmp:
        workdir = Path(tmp)
        upstream = start_server(create_fake_vllm())
        say(f"fake vLLM on {upstream.url} (base model tiny, LoRA adapters support and legal)")
        sidecar = start_sidecar(demo_settings(workdir, upstream.url))
        say(f"sidecar proxy on {sidecar.proxy_url}, admin on {sidecar.admin_url}")
        try:
            send_traffic(sidecar, requests, say)
            writer = sidecar.sidecar.writer
            assert writer is not None
            sidecar.call(writer.drain(10.0))
            engine = sidecar.sidecar.engine
            assert engine is not None
            now = datetime.now(UTC) + timedelta(seconds=1)
            window = TimeWindow(since=now - timedelta(hours=1), until=now)
            for name in ("traffic", "latency", "compliance", "feedback"):
                show(sidecar.call(run_report(engine, name, window, timeout_s=10)))
        finally:
            sidecar.stop()
            upstream.stop()
    say(
        "done; run `make run` to keep a sidecar up, and see docs/ for SQL, reports and configuration"
    )


def run_incident_demo(say: Callable[[str], None]) -> None:
    """Play the incident script against a fresh sidecar, saying what fired and what cleared."""
    from sidecar.cli import main

    with tempfile.TemporaryDirectory(prefix="sidecar-incident-") as tmp:
        workdir = Path(tmp)
        upstream = start_server(create_fake_vllm())
        receiver = WebhookSink()
        receiver_server = start_server(receiver)
        sections = incident_sections(workdir)
        sections["alerts"] |= {"log": False, "webhook_urls": [f"{receiver_server.url}/alerts"]}
        settings = demo_settings(workdir, upstream.url, **sections)
        config = workdir / "sidecar.yaml"
        config.write_text(yaml.safe_dump({"database": {"url": settings.database.url},
                                          "drift": sections["drift"]}))  # fmt: skip

        def cli(args: list[str]) -> str:
            say(f"$ sidecar {' '.join(args)}")
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    main.main([*args, "--config", str(config)], "sidecar", standalone_mode=False)
                except click.ClickException as exc:
                    return f"{out.getvalue()}error: {exc.format_message()}"
            return out.getvalue()

        sidecar = start_sidecar(settings)
        say(f"fake vLLM on {upstream.url}, sidecar on {sidecar.proxy_url} (admin "
            f"{sidecar.admin_url}), alerts to a webhook receiver on {receiver_server.url}")  # fmt: skip
        traffic = IncidentTraffic(sidecar.proxy_url).start()
        started = time.monotonic()
        try:
            Incident(traffic, sidecar.admin_url,
                     lambda: notices(receiver.received["/alerts"]), cli, say).play()  # fmt: skip
        finally:
            traffic.stop()
            sidecar.stop()
            receiver_server.stop()
            upstream.stop()
        seen = notices(receiver.received["/alerts"])
        say(f"incident over in {time.monotonic() - started:.0f} s: {len(seen)} notifications, "
            f"{sum(1 for n in seen if n.status == 'firing')} fired and "
            f"{sum(1 for n in seen if n.status == 'resolved')} cleared, each once "
            f"({sum(traffic.answered.values())} requests)")  # fmt: skip
