"""``sidecar demo``: a fake vLLM, a sidecar in front of it, some traffic, then the reports.

Everything runs in this process on free ports with a throwaway SQLite file, so a newcomer sees
the whole loop (proxy -> log -> compliance -> feedback -> reports) in a few seconds.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson

from sidecar.reports.base import ReportTable, ReportWindow, run_report
from sidecar.reports.catalog import load_reports
from sidecar.settings import Settings, load_settings
from sidecar.testing.fake_vllm import create_fake_vllm
from sidecar.testing.harness import RunningSidecar, start_sidecar
from sidecar.testing.servers import start_server

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
GOOD = {"category": "billing", "priority": 2, "sentiment": "negative",
        "summary": "Charged twice for the March invoice", "needs_human": True}  # fmt: skip
OUTPUTS = [
    orjson.dumps(GOOD).decode(),
    orjson.dumps({**GOOD, "priority": 9}).decode(),  # out of range: invalid
    "Sure! I think this is a billing problem.",  # not JSON: unparseable
]
QUESTIONS = ["I was charged twice", "The app crashes on login", "How do I export my data?"]


def demo_settings(workdir: Path, upstream_url: str) -> Settings:
    return load_settings(env={}, overrides={
        "proxy": {"host": "127.0.0.1", "port": 0}, "admin": {"port": 0},
        "upstream": {"url": upstream_url, "models_refresh_s": 1.0},
        "database": {"url": f"sqlite:///{workdir}/demo.db"},
        "spool": {"dir": str(workdir / "spool")},
        "writer": {"workers": 0},
        "compliance": {"schemas_dir": str(SCHEMAS),
                       "rules": [{"schema": "support_triage", "adapter": "support"}]},
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
            window = ReportWindow(since=now - timedelta(hours=1), until=now)
            for name in ("traffic", "latency", "compliance", "feedback"):
                show(sidecar.call(run_report(engine, name, window, timeout_s=10)))
        finally:
            sidecar.stop()
            upstream.stop()
    say(
        "done; run `make run` to keep a sidecar up, and see docs/ for SQL, reports and configuration"
    )
