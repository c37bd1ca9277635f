"""Proxy overhead benchmark: the same load sent directly to a fake vLLM and through the sidecar.

Every response is a ~1 kB JSON document that the sidecar validates against
``schemas/code_review.json`` in its log writer. Both run as separate processes on this machine; the load generator is this
process (aiohttp on uvloop). Every scenario runs direct and proxied back to
back in one run, so the ratios compare like with like. Logging goes to a
throwaway Postgres database, and each proxied scenario waits until every
request it sent is in the ``requests`` table.

    python -m bench.proxy_bench [--seconds 5] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import psycopg
import uvloop
import yaml

ADMIN_PG = os.environ.get("SIDECAR_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres")
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}
# A realistic ~1 kB structured answer; the sidecar validates every one against
# schemas/code_review.json (streams stop after 18 tokens, so theirs are "truncated").
REVIEW = {
    "verdict": "request_changes",
    "comments": [
        {"file": f"service/handlers/orders_{n}.py", "line": 10 + n, "severity": "minor",
         "message": "This loop issues one query per item; fetch them in a single query instead."}
        for n in range(6)
    ],
}  # fmt: skip
OUTPUT_HEADER = "json:" + orjson.dumps(orjson.dumps(REVIEW).decode()).decode()
SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "schemas"


@dataclass(frozen=True)
class Scenario:
    name: str
    concurrency: int
    stream: bool = False
    slow_upstream: bool = False


SCENARIOS = [
    Scenario("non-streaming, c=1", 1),
    Scenario("non-streaming, c=32", 32),
    Scenario("streaming 20 chunks, c=1", 1, stream=True),
    Scenario("streaming 20 chunks, c=16", 16, stream=True),
    Scenario("non-streaming, 50 ms upstream, c=32", 32, slow_upstream=True),
]


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    first_event_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout_s: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_load(url: str, scenario: Scenario, seconds: float) -> Result:
    body = {**CHAT, "max_tokens": 18 if scenario.stream else 400, "stream": scenario.stream}
    headers = {"content-type": "application/json", "x-fake-output": OUTPUT_HEADER}
    latencies: list[float] = []
    first_events: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=scenario.concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    async with session.post(url, json=body, headers=headers) as response:
                        if scenario.stream:
                            first = None
                            async for _ in response.content.iter_any():
                                if first is None:
                                    first = time.perf_counter()
                            first_events.append(((first or time.perf_counter()) - start) * 1000)
                        else:
                            await response.read()
                        if response.status != 200:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - start) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(scenario.concurrency)))
        elapsed = time.perf_counter() - started
    return Result(len(latencies), errors, elapsed, latencies, first_events)


class Processes:
    def __init__(self, workdir: Path, database_url: str) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.children: list[subprocess.Popen[bytes]] = []

    def start_fake(self, latency_ms: float) -> str:
        port = free_port()
        command = [sys.executable, "-m", "sidecar.cli", "fake-vllm", "--port", str(port),
                   "--latency-ms", str(latency_ms)]  # fmt: skip
        self.children.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health")
        return url

    def start_sidecar(self, upstream: str) -> tuple[str, subprocess.Popen[bytes]]:
        port, admin = free_port(), free_port()
        config = self.workdir / f"sidecar-{port}.yaml"
        config.write_text(yaml.safe_dump({
            "upstream": {"url": upstream},
            "proxy": {"host": "127.0.0.1", "port": port},
            "admin": {"port": admin},
            "database": {"url": self.database_url},
            "spool": {"dir": str(self.workdir / f"spool-{port}")},
            "compliance": {"schemas_dir": str(SCHEMAS_DIR), "rules": [{"schema": "code_review"}]},
            "log_level": "warning",
        }))  # fmt: skip
        process = subprocess.Popen(
            [sys.executable, "-m", "sidecar.cli", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            env={**os.environ, "SIDECAR_UPSTREAM_URL": "", "SIDECAR_DATABASE_URL": ""},
        )
        self.children.append(process)
        wait_http(f"http://127.0.0.1:{admin}/healthz")
        return f"http://127.0.0.1:{port}", process

    def stop(self) -> None:
        for child in self.children:
            child.terminate()
        for child in self.children:
            child.wait(30)


def logged_rows(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*) FROM requests").fetchone()
        return int(row[0]) if row else 0


def verdicts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT coalesce(schema_verdict, 'none'), count(*) FROM requests GROUP BY 1"
        ).fetchall()
    return {str(verdict): int(count) for verdict, count in rows}


def wait_logged(database_url: str, expected: int, timeout_s: float = 120) -> float:
    start = time.perf_counter()
    while logged_rows(database_url) < expected:
        if time.perf_counter() - start > timeout_s:
            raise RuntimeError(
                f"only {logged_rows(database_url)} of {expected} requests were logged"
            )
        time.sleep(0.05)
    return time.perf_counter() - start


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


async def bench(seconds: float, only: str | None = None) -> list[str]:
    database = f"sidecar_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_PG, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    database_url = ADMIN_PG.rsplit("/", 1)[0] + f"/{database}"
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        processes = Processes(Path(tmp), database_url)
        try:
            fast = processes.start_fake(0)
            slow = processes.start_fake(50)
            proxy_fast, sidecar_fast = processes.start_sidecar(fast)
            proxy_slow, _ = processes.start_sidecar(slow)
            logged = 0
            peak_rss = rss_mb(sidecar_fast.pid)
            for scenario in SCENARIOS:
                if only and only not in scenario.name:
                    continue
                upstream, proxy = (
                    (slow, proxy_slow) if scenario.slow_upstream else (fast, proxy_fast)
                )
                path = "/v1/chat/completions"
                await run_load(upstream + path, scenario, 1.0)  # warm-up, both sides
                await run_load(proxy + path, scenario, 1.0)
                logged_before = logged_rows(database_url)
                direct = await run_load(upstream + path, scenario, seconds)
                proxied = await run_load(proxy + path, scenario, seconds)
                wait_logged(database_url, logged_before + proxied.requests)
                logged = logged_rows(database_url)
                peak_rss = max(peak_rss, rss_mb(sidecar_fast.pid))
                added = proxied.pct(proxied.latencies_ms, 0.5) - direct.pct(
                    direct.latencies_ms, 0.5
                )
                ttft = "-"
                if scenario.stream:
                    ttft = (f"{fmt(direct.pct(direct.first_event_ms, 0.5))} / "
                            f"{fmt(proxied.pct(proxied.first_event_ms, 0.5))} "
                            f"(+{fmt(proxied.pct(proxied.first_event_ms, 0.5) - direct.pct(direct.first_event_ms, 0.5))})")  # fmt: skip
                rows.append(
                    f"| {scenario.name} | {fmt(direct.rps, 0)} | {fmt(proxied.rps, 0)} | "
                    f"{fmt(proxied.rps / direct.rps)} | {fmt(direct.pct(direct.latencies_ms, 0.5))} / "
                    f"{fmt(direct.pct(direct.latencies_ms, 0.99))} | "
                    f"{fmt(proxied.pct(proxied.latencies_ms, 0.5))} / "
                    f"{fmt(proxied.pct(proxied.latencies_ms, 0.99))} | {fmt(added)} | {ttft} | "
                    f"{direct.errors + proxied.errors} |"
                )
                print(rows[-1], flush=True)
                if direct.errors or proxied.errors:
                    raise RuntimeError(
                        f"{scenario.name}: requests failed; the numbers are not valid"
                    )
            rows.append("")
            rows.append(
                f"Every proxied request was logged: {logged} rows in Postgres at the end, "
                f"schema verdicts {verdicts(database_url)}."
            )
            rows.append(
                f"Sidecar resident memory (fast upstream), peak sampled: {fmt(peak_rss, 0)} MiB."
            )
        finally:
            processes.stop()
            with psycopg.connect(ADMIN_PG, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return rows


HEADER = """| scenario | direct req/s | sidecar req/s | ratio | direct p50 / p99 ms | sidecar p50 / p99 ms | added p50 ms | first SSE event p50 ms direct / sidecar (added) | errors |
|---|---|---|---|---|---|---|---|---|"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="measured seconds per side and scenario"
    )
    parser.add_argument(
        "--write", type=Path, help="replace the results section of this markdown file"
    )
    parser.add_argument("--only", help="run only the scenarios whose name contains this text")
    args = parser.parse_args()
    print(HEADER, flush=True)
    rows = uvloop.run(bench(args.seconds, args.only))
    if args.write:
        machine = (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        table = "\n".join([HEADER, *rows])
        section = (f"<!-- bench:start -->\nMeasured {time.strftime('%Y-%m-%d')} on {machine}, "
                   f"{args.seconds:g} s per side and scenario.\n\n{table}\n<!-- bench:end -->")  # fmt: skip
        text = (
            args.write.read_text()
            if args.write.exists()
            else "<!-- bench:start -->\n<!-- bench:end -->\n"
        )
        head, _, rest = text.partition("<!-- bench:start -->")
        _, _, tail = rest.partition("<!-- bench:end -->")
        args.write.write_text(head + section + tail)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
