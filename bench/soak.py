"""Soak: a fixed request rate through one sidecar for minutes; memory, spool and loss over time.

Starts, as separate processes on loopback, a fake vLLM (`sidecar fake-vllm`) and one sidecar
(`sidecar serve`, shipped defaults except the ports, the spool and a throwaway Postgres database),
then sends ``--rate`` requests per second (open loop: one started every 1/rate s, whatever the
answers do; a quarter of them streamed) for ``--seconds``. Every ``--sample-s`` it records the
sidecar's resident memory (/proc/<pid>/status VmRSS) and, from its admin /metrics, the spool
bytes, the writer lag and the rows written and lost. At the end it waits for the spool to drain
and checks that every answered request (its X-Request-Id) is a row in Postgres.

    python -m bench.soak [--seconds 600] [--rate 200] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psycopg
import uvloop
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bench.alerts_eval import drop_database, recreate_database
from bench.proxy_bench import free_port, rss_mb, wait_http
from bench.sections import write_section

DEFAULT_DATABASE_URL = "postgresql://root@127.0.0.1:5432/sidecar_bench_soak"
MAX_IN_FLIGHT = 2000  # beyond this the sidecar is not keeping up: count, do not pile on
WARM_UP_S = 60.0  # memory growth is measured from the first sample after this
DRAIN_TIMEOUT_S = 300.0
STARTUP_TIMEOUT_S = 180.0  # generous: a shared, busy machine starts Python processes slowly
TITLE = "## Soak"
INTRO = (
    "`make soak` (code in `bench/soak.py`) sends a fixed rate of chat requests (open loop, a\n"
    "quarter streamed) through one sidecar subprocess in front of the fake vLLM, on loopback,\n"
    "logging to Postgres with the shipped defaults, and samples the sidecar every 10 s: resident\n"
    "memory, `sidecar_log_spool_bytes`, `sidecar_log_writer_lag_seconds`, rows written and lost.\n"
    "At the end it waits for the spool to drain and looks up every answered request's\n"
    "X-Request-Id in `requests`.\n"
)


@dataclass
class Load:
    """What the clients saw."""

    sent: int = 0
    answered: list[str] = field(default_factory=list)  # X-Request-Id of complete answers
    errors: Counter[str] = field(default_factory=Counter)
    skipped: int = 0  # not sent: MAX_IN_FLIGHT requests were already waiting
    in_flight: int = 0


@dataclass(frozen=True, slots=True)
class Sample:
    at_s: float
    sent: int
    answered: int
    client_errors: int
    rss_mib: float
    spool_bytes: float
    writer_lag_s: float
    rows_written: float
    rows_lost: float


def chat_body(number: int) -> dict[str, object]:
    topics = ("billing", "shipping", "login", "refund", "upgrade", "cancel")
    question = f"Ticket {number}: I have a question about {topics[number % len(topics)]}."
    return {"model": "tiny", "messages": [{"role": "user", "content": question}],
            "max_tokens": 16, "stream": number % 4 == 0}  # fmt: skip


async def one_request(session: aiohttp.ClientSession, url: str, number: int, load: Load) -> None:
    body = chat_body(number)
    load.in_flight += 1
    try:
        async with session.post(url, json=body) as response:
            payload = await response.read()
            complete = response.status == 200 and (
                not body["stream"] or payload.rstrip().endswith(b"data: [DONE]")
            )
            if complete:
                load.answered.append(response.headers["x-request-id"])
            else:
                load.errors[f"status {response.status}" if response.status != 200 else "cut"] += 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        load.errors[type(exc).__name__] += 1
    finally:
        load.in_flight -= 1


async def send_at_rate(url: str, rate: float, seconds: float, load: Load) -> None:
    """Start one request every 1/rate s (open loop) for ``seconds``; wait for the last answers."""
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    timeout = aiohttp.ClientTimeout(total=60)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = loop.time()
        total = int(rate * seconds)
        for number in range(total):
            delay = start + number / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if load.in_flight >= MAX_IN_FLIGHT:
                load.skipped += 1
                continue
            load.sent += 1
            task = asyncio.create_task(one_request(session, url, number, load))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)


def metric_sums(text: str) -> defaultdict[str, float]:
    """Each sample name's value summed over its labels."""
    sums: defaultdict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] += sample.value
    return sums


async def take_sample(
    session: aiohttp.ClientSession, admin_url: str, pid: int, load: Load, started: float
) -> Sample:
    async with session.get(f"{admin_url}/metrics") as response:
        metrics = metric_sums(await response.text())
    return Sample(
        at_s=time.monotonic() - started, sent=load.sent, answered=len(load.answered),
        client_errors=sum(load.errors.values()), rss_mib=rss_mb(pid),
        spool_bytes=metrics["sidecar_log_spool_bytes"],
        writer_lag_s=metrics["sidecar_log_writer_lag_seconds"],
        rows_written=metrics["sidecar_log_rows_written_total"],
        rows_lost=metrics["sidecar_log_rows_lost_total"],
    )  # fmt: skip


HEADER = (
    "| t (s) | sent | answered | client errors | RSS MiB | spool bytes | writer lag s | "
    "rows written | rows lost |\n|---|---|---|---|---|---|---|---|---|"
)


def row(sample: Sample, label: str | None = None) -> str:
    return (
        f"| {label or f'{sample.at_s:.0f}'} | {sample.sent} | {sample.answered} | "
        f"{sample.client_errors} | {sample.rss_mib:.1f} | {sample.spool_bytes:.0f} | "
        f"{sample.writer_lag_s:.2f} | {sample.rows_written:.0f} | {sample.rows_lost:.0f} |"
    )


def memory_trend(samples: list[Sample]) -> tuple[Sample, Sample, float]:
    """The first sample after the warm-up, the last one, and the least-squares slope of the
    resident memory between them in MiB per minute."""
    settled = [s for s in samples if s.at_s >= WARM_UP_S] or samples
    if len(settled) < 2:
        return settled[0], settled[-1], 0.0
    mean_t = sum(s.at_s for s in settled) / len(settled)
    mean_m = sum(s.rss_mib for s in settled) / len(settled)
    covariance = sum((s.at_s - mean_t) * (s.rss_mib - mean_m) for s in settled)
    variance = sum((s.at_s - mean_t) ** 2 for s in settled)
    return settled[0], settled[-1], covariance / variance * 60


def logged_ids(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as connection:
        return {str(found[0]) for found in connection.execute("SELECT id FROM requests")}


def wait_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the sidecar exited with {process.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer in {STARTUP_TIMEOUT_S:g} s") from None
            time.sleep(0.1)


@dataclass
class Sidecar:
    workdir: Path
    database_url: str
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> tuple[str, str, int]:
        """Fake vLLM and sidecar; returns (proxy URL, admin URL, sidecar pid)."""
        fake_port, port, admin = free_port(), free_port(), free_port()
        self.children.append(subprocess.Popen(
            [sys.executable, "-m", "sidecar.cli", "fake-vllm", "--port", str(fake_port)],
            stdout=subprocess.DEVNULL,
        ))  # fmt: skip
        wait_http(f"http://127.0.0.1:{fake_port}/health", STARTUP_TIMEOUT_S)
        config = self.workdir / "sidecar.yaml"
        config.write_text(yaml.safe_dump({
            "upstream": {"url": f"http://127.0.0.1:{fake_port}"},
            "proxy": {"host": "127.0.0.1", "port": port},
            "admin": {"port": admin},
            "database": {"url": self.database_url},
            "spool": {"dir": str(self.workdir / "spool")},
            "log_level": "warning",
        }))  # fmt: skip
        sidecar = subprocess.Popen(
            [sys.executable, "-m", "sidecar.cli", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            env={**os.environ, "SIDECAR_UPSTREAM_URL": "", "SIDECAR_DATABASE_URL": ""},
        )
        self.children.append(sidecar)
        wait_serving(f"http://127.0.0.1:{admin}/healthz", sidecar)
        return f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}", sidecar.pid

    def stop(self) -> None:
        for child in reversed(self.children):
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(40)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)


@dataclass
class Result:
    samples: list[Sample]
    load: Load
    logged: int
    missing: int
    drain_s: float


async def soak(database_url: str, rate: float, seconds: float, sample_s: float) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        processes = Sidecar(Path(tmp), database_url)
        try:
            proxy_url, admin_url, pid = processes.start()
            load = Load()
            samples: list[Sample] = []
            async with aiohttp.ClientSession() as session:
                started = time.monotonic()
                sender = asyncio.create_task(
                    send_at_rate(f"{proxy_url}/v1/chat/completions", rate, seconds, load)
                )
                while not (await asyncio.wait([sender], timeout=sample_s))[0]:
                    samples.append(await take_sample(session, admin_url, pid, load, started))
                    print(row(samples[-1]), flush=True)
                await sender
                drain_started = time.monotonic()
                answered = set(load.answered)
                while not answered <= (logged := logged_ids(database_url)):
                    if time.monotonic() - drain_started > DRAIN_TIMEOUT_S:
                        break
                    await asyncio.sleep(0.5)
                drain_s = time.monotonic() - drain_started
                samples.append(await take_sample(session, admin_url, pid, load, started))
                print(row(samples[-1], "drained"), flush=True)
        finally:
            processes.stop()
    return Result(samples, load, len(logged), len(answered - logged), drain_s)


def summary(result: Result, rate: float, seconds: float) -> list[str]:
    load, samples = result.load, result.samples
    first, last, slope = memory_trend(samples[:-1])
    peak = max(s.rss_mib for s in samples)
    lag = max(s.writer_lag_s for s in samples)
    spool = max(s.spool_bytes for s in samples)
    errors = ", ".join(f"{kind}: {count}" for kind, count in load.errors.items()) or "none"
    lost = samples[-1].rows_lost
    zero_loss = result.missing == 0 and lost == 0
    return [
        f"- Offered {rate:g} req/s for {seconds:g} s: {load.sent} sent, {len(load.answered)} "
        f"answered completely ({len(load.answered) / seconds:.1f} req/s), client errors: "
        f"{errors}; {load.skipped} not sent because {MAX_IN_FLIGHT} were already waiting.",
        f"- Memory (VmRSS): {samples[0].rss_mib:.1f} MiB at the first sample, "
        f"{first.rss_mib:.1f} MiB at {first.at_s:.0f} s, {last.rss_mib:.1f} MiB at "
        f"{last.at_s:.0f} s (peak {peak:.1f} MiB); trend from {first.at_s:.0f} s on: "
        f"{slope:+.2f} MiB/min.",
        f"- Spool: at most {spool:.0f} bytes waiting at a sample; writer lag at most {lag:.2f} s; "
        f"drained {result.drain_s:.1f} s after the last answer.",
        f"- Loss: {result.logged} rows in Postgres for {len(load.answered)} answered requests, "
        f"{result.missing} answered requests missing, sidecar_log_rows_lost_total = {lost:.0f}: "
        f"{'zero loss' if zero_loss else 'LOSS'}.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=600.0, help="how long to send (600)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (200)")
    parser.add_argument("--sample-s", type=float, default=10.0, help="sampling period (10)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help="recreated at the start and dropped at the end")  # fmt: skip
    parser.add_argument("--write", type=Path, help="replace the ## Soak section of this file")
    args = parser.parse_args()
    recreate_database(args.database_url)
    print(HEADER, flush=True)
    try:
        result = uvloop.run(soak(args.database_url, args.rate, args.seconds, args.sample_s))
    finally:
        drop_database(args.database_url)
    lines = summary(result, args.rate, args.seconds)
    print("\n".join(["", *lines]))
    if args.write:
        machine = (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        table = "\n".join([HEADER, *(row(s) for s in result.samples[:-1]),
                           row(result.samples[-1], "drained")])  # fmt: skip
        body = (f"Measured {time.strftime('%Y-%m-%d')} on {machine}: {args.rate:g} req/s for "
                f"{args.seconds:g} s, sampled every {args.sample_s:g} s.\n\n{table}\n\n"
                + "\n".join(lines))  # fmt: skip
        write_section(args.write, "soak", TITLE, INTRO, body)
        print(f"wrote {args.write}")
    if result.missing or result.samples[-1].rows_lost:
        sys.exit(1)


if __name__ == "__main__":
    main()
