"""What drift costs: one check over 100k reference + 100k current requests, and the per-request
feature extraction (and, with ``drift.embeddings``, the sentence vectors) the log writer adds
(``make bench-drift``).

Fills a throwaway Postgres database with synthetic chat requests (features computed by the same
``extract_features`` the writer runs), then times ``run_drift`` end to end: the two bounded
window reads, the statistics and the insert of the results.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import platform
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from bench.alerts_eval import drop_database, recreate_database
from bench.sections import write_section
from sidecar.drift.embeddings import MINILM_DIM, PACKED_BYTES, embed_row, load_embedder
from sidecar.drift.features import extract_features
from sidecar.drift.job import run_drift
from sidecar.metrics import SidecarMetrics
from sidecar.records import LoggedRequest
from sidecar.settings import DriftSettings, EmbeddingSettings
from sidecar.store.engine import create_engine
from sidecar.store.migrate import upgrade
from sidecar.store.writes import insert_requests
from sidecar.testing.topics import TOPICS, question

DEFAULT_DATABASE_URL = "postgresql://root@127.0.0.1:5432/sidecar_bench_drift"
INSERT_CHUNK = 5000
TITLE = "## Drift check and feature extraction"
INTRO = (
    "`make bench-drift` (code in `bench/drift_bench.py`) fills a throwaway Postgres database with\n"
    "synthetic chat requests for one model (the reference day on one topic, the current day\n"
    "half on another, with a second system prompt), features computed by the writer's own\n"
    "`extract_features`, then times `run_drift` end to end (both window reads, every feature's\n"
    "statistics, the insert of the results), without and with `drift.embeddings` (the static\n"
    "model's vectors of prompt and output, stored by the fill). Feature extraction and the\n"
    "embedding are timed per request on the same rows, beside the writer's Postgres insert.\n"
)


def synthetic(rng: random.Random, started_at: datetime, topic: str, system: str) -> LoggedRequest:
    asked = question(rng, TOPICS[topic], (5, 25))
    answer = question(rng, TOPICS[topic], (10, 60))
    prompt_tokens, completion_tokens = 20 + len(asked) // 4, len(answer) // 4
    return LoggedRequest(
        id=f"{rng.getrandbits(128):032x}", client_request_id=None, completion_id=None,
        started_at=started_at, method="POST", path="/v1/chat/completions", status=200,
        latency_ms=rng.gauss(300, 40), ttfb_ms=None, ttft_ms=None, upstream_ms=None,
        stream=False, model="support", base_model="tiny", adapter="support",
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens, finish_reason="stop",
        request_body={"model": "support", "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": asked}]},
        response_body={"choices": [{"index": 0, "message": {"role": "assistant",
                                                            "content": answer}}]},
        error_kind=None, error_message=None, cancelled=False, client_key_hash=None,
        body_policy="full",
    )  # fmt: skip


async def fill(
    database_url: str, per_window: int, now: datetime
) -> tuple[list[float], list[float]]:
    """Insert ``per_window`` rows in each window; returns extraction and embedding times (µs
    per row)."""
    rng = random.Random(7)
    engine = create_engine(database_url, pool_size=2)
    embedder = load_embedder("static")
    extraction_us: list[float] = []
    embedding_us: list[float] = []
    spacing = timedelta(days=1) / per_window
    try:
        for window_start, shifted in (
            (now - timedelta(days=2), False),
            (now - timedelta(days=1), True),
        ):
            for chunk_start in range(0, per_window, INSERT_CHUNK):
                rows = []
                for index in range(chunk_start, min(per_window, chunk_start + INSERT_CHUNK)):
                    other = shifted and index % 2 == 0
                    row = synthetic(rng, window_start + index * spacing,
                                    "travel" if other else "support",
                                    "You are a travel agent." if other else "You are support.")  # fmt: skip
                    started = time.perf_counter()
                    features = extract_features(row).as_json()
                    row = dataclasses.replace(row, features=features)
                    extraction_us.append((time.perf_counter() - started) * 1e6)
                    started = time.perf_counter()
                    prompt, output = embed_row(row, embedder, ("prompt", "output"))
                    embedding_us.append((time.perf_counter() - started) * 1e6)
                    row = dataclasses.replace(row, prompt_embedding=prompt, output_embedding=output)
                    rows.append(row)
                await insert_requests(engine, rows)
            print(f"  inserted {per_window:,} rows for the window starting {window_start:%m-%d}")
    finally:
        await engine.dispose()
    return extraction_us, embedding_us


def time_minilm(rows: int = 500) -> list[float]:
    """µs per request to embed prompt and output with the minilm model, on synthetic rows."""
    rng = random.Random(7)
    embedder = load_embedder("minilm")
    start = datetime.now(UTC)
    timings = []
    for _ in range(rows):
        row = synthetic(rng, start, "support", "You are support.")
        began = time.perf_counter()
        embed_row(row, embedder, ("prompt", "output"))
        timings.append((time.perf_counter() - began) * 1e6)
    return timings


async def time_inserts(database_url: str, rows: int) -> float:
    """The writer's insert cost per row (µs), on the same kind of rows, for scale."""
    rng = random.Random(11)
    batch = [synthetic(rng, datetime.now(UTC), "support", "You are support.") for _ in range(rows)]
    batch = [dataclasses.replace(row, features=extract_features(row).as_json()) for row in batch]
    engine = create_engine(database_url, pool_size=2)
    try:
        started = time.perf_counter()
        for start in range(0, rows, 500):  # the writer's default batch size
            await insert_requests(engine, batch[start : start + 500])
        return (time.perf_counter() - started) * 1e6 / rows
    finally:
        await engine.dispose()


async def time_runs(
    database_url: str, now: datetime, runs: int, *, embeddings: bool = False
) -> list[float]:
    engine = create_engine(database_url, pool_size=2)
    # Without: no embedding field (the check would still test stored vectors with it off).
    chosen = EmbeddingSettings(enabled=True, fields=["prompt", "output"] if embeddings else [])
    settings = DriftSettings(window_s=86400, embeddings=chosen)
    seconds = []
    try:
        for _ in range(runs):
            started = time.perf_counter()
            checks = await run_drift(engine, settings, SidecarMetrics(CollectorRegistry()), now,
                                     force=True)  # fmt: skip
            seconds.append(time.perf_counter() - started)
            assert checks, "the drift run found no traffic"
            drifted = [result.feature for result in checks[0].results if result.drifted]
        print(f"  drifted: {', '.join(drifted)}")
    finally:
        await engine.dispose()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="requests per window")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--write", type=Path, help="write the results into this markdown file")
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    recreate_database(args.database_url)
    upgrade(args.database_url)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        extraction, embedding = asyncio.run(fill(args.database_url, args.rows, now))
        insert_us = asyncio.run(time_inserts(args.database_url, 10_000))
        runs = asyncio.run(time_runs(args.database_url, now, args.runs))
        semantic = asyncio.run(time_runs(args.database_url, now, args.runs, embeddings=True))
        minilm = time_minilm()
    finally:
        if not args.keep_database:
            drop_database(args.database_url)
    cpu = platform.processor() or platform.machine()
    body = "\n".join([
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {cpu}, {__import__('os').cpu_count()} cores, "
        "Postgres on the same machine.",
        "",
        "| what | result |",
        "|---|---|",
        f"| drift check, {args.rows:,} reference + {args.rows:,} current requests | median "
        f"{statistics.median(runs):.1f} s over {len(runs)} runs (min {min(runs):.1f} s) |",
        f"| feature extraction per request | median {statistics.median(extraction):.0f} µs, "
        f"p95 {statistics.quantiles(extraction, n=20)[-1]:.0f} µs |",
        f"| writer insert per request (Postgres, batches of 500) | {insert_us:.0f} µs |",
        f"| extraction at the 1,500 req/s target | {statistics.median(extraction) * 1500 / 1e4:.1f}% "
        "of one core |",
        f"| drift check with `drift.embeddings` (prompt + output, 500 sampled a window) | median "
        f"{statistics.median(semantic):.1f} s over {len(semantic)} runs (min {min(semantic):.1f} s) |",
        f"| embedding per request (static model, prompt + output) | median "
        f"{statistics.median(embedding):.0f} µs, p95 {statistics.quantiles(embedding, n=20)[-1]:.0f} µs "
        f"({2 * PACKED_BYTES} bytes stored) |",
        f"| embedding at the 1,500 req/s target | {statistics.median(embedding) * 1500 / 1e4:.1f}% "
        "of one core |",
        f"| embedding per request (`model: minilm`, prompt + output, one onnxruntime thread) | "
        f"median {statistics.median(minilm) / 1000:.2f} ms, p95 "
        f"{statistics.quantiles(minilm, n=20)[-1] / 1000:.2f} ms ({2 * (1 + MINILM_DIM)} bytes stored) |",
        f"| minilm at the 1,500 req/s target | {statistics.median(minilm) * 1500 / 1e6:.1f} cores |",
    ])  # fmt: skip
    print(body)
    if args.write:
        write_section(args.write, "drift", TITLE, INTRO, body)


if __name__ == "__main__":
    main()
