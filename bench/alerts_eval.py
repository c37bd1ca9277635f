"""Alert evaluation cost vs table size: one alert round at 100k rows and again at 5M rows.

The design promises that alert evaluation reads bounded time windows, so its cost follows the
traffic inside the windows, not the size of ``requests``. This benchmark holds the windows'
content fixed and grows only the history behind them:

- the last hour always holds the same traffic, 10 requests/s (3,000 rows in the last
  5 minutes, 36,000 in the hour), regenerated relative to the current time before each
  measurement, with 2% of it rated in ``feedback``;
- every other row is history, spread over 30 days and ending 24 hours ago (so it is outside
  even the satisfaction rule's 24-hour window), also with 2% of it rated.

Each measurement times ``sidecar.alerts.job.evaluate_round`` with the built-in rules
(``DEFAULT_RULES``) and ``now`` = the current time, as the scheduler runs it, after a
``VACUUM ANALYZE``; then each rule's reader alone. Rows are generated in Postgres itself
(``INSERT ... SELECT FROM generate_series``) without bodies, into a throwaway database.

    python -m bench.alerts_eval [--rows 100000,5000000] [--rounds 20] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import uvloop
from psycopg import sql

from bench.sections import write_section
from sidecar.alerts.job import evaluate_round
from sidecar.alerts.readers import DEFAULT_RULES, READERS
from sidecar.store.engine import create_engine
from sidecar.store.migrate import upgrade_async

DEFAULT_DATABASE_URL = "postgresql://root@127.0.0.1:5432/sidecar_bench_alerts"
RECENT_WINDOW = timedelta(hours=1)
RECENT_RATE_PER_S = 10
RECENT_ROWS = int(RECENT_WINDOW.total_seconds()) * RECENT_RATE_PER_S
RECENT_PREFIX = "recent-"
HISTORY_SPAN = timedelta(days=30)
HISTORY_GAP = timedelta(hours=24)  # history ends here, outside every rule's window
HISTORY_CHUNK_ROWS = 500_000  # one INSERT per chunk, so progress shows and memory stays flat
WARM_UP_ROUNDS = 2
SECTION_TITLE = "## Alert evaluation vs table size"

# One statement inserts `count` requests spread evenly over [start, start + span_s) and rates
# 2% of the successful ones. Four models (three LoRA adapters and their base), each adapter
# with its own JSON schema; about 2% 502s, 1% 500s, 1% 429s, 1% cancelled (499); 94% of
# checked outputs valid. `random()` draws are independent per row.
INSERT_ROWS = """
WITH drawn AS (
    SELECT g, %(start)s::timestamptz
              + make_interval(secs => %(span_s)s::float8 * (g - 0.5) / %(count)s::bigint)
              AS started_at,
           random() AS fate, random() AS verdict_draw, random() AS speed
    FROM generate_series(1, %(count)s::bigint) AS g
), shaped AS (
    SELECT g, started_at, speed,
           (ARRAY['support-v3', 'code-review', 'clinical-extract', 'llama-3-8b'])[1 + g %% 4] AS model,
           (ARRAY['support-v3', 'code-review', 'clinical-extract', NULL])[1 + g %% 4] AS adapter,
           (ARRAY['support_triage', 'code_review', 'clinical_extraction', NULL])[1 + g %% 4]
               AS schema_name,
           CASE WHEN fate < 0.02 THEN 502 WHEN fate < 0.03 THEN 500 WHEN fate < 0.04 THEN 429
                WHEN fate < 0.05 THEN 499 ELSE 200 END AS status,
           CASE WHEN verdict_draw < 0.94 THEN 'valid' WHEN verdict_draw < 0.97 THEN 'invalid'
                WHEN verdict_draw < 0.99 THEN 'truncated' ELSE 'unparseable' END AS verdict
    FROM drawn
), inserted AS (
    INSERT INTO requests (
        id, started_at, method, path, status, latency_ms, ttft_ms, stream, model, base_model,
        adapter, prompt_tokens, completion_tokens, total_tokens, finish_reason, error_kind,
        cancelled, body_policy, schema_name, schema_verdict, schema_error_count, logged_at)
    SELECT %(prefix)s || g, started_at, 'POST', '/v1/chat/completions', status,
           60 + 700 * speed ^ 3, CASE WHEN g %% 3 = 0 THEN 15 + 60 * speed END, g %% 3 = 0,
           model, 'llama-3-8b', adapter, 200 + g %% 300, 40 + g %% 200, 240 + g %% 300 + g %% 200,
           CASE WHEN status = 200 THEN 'stop' END,
           CASE status WHEN 502 THEN 'upstream_unreachable' WHEN 500 THEN 'upstream_error' END,
           status = 499, 'none', schema_name,
           CASE WHEN status = 200 AND schema_name IS NOT NULL THEN verdict END,
           CASE WHEN status = 200 AND schema_name IS NOT NULL
                THEN CASE WHEN verdict = 'valid' THEN 0 ELSE 1 END END,
           started_at + interval '50 milliseconds'
    FROM shaped
    RETURNING id, started_at, status
)
INSERT INTO feedback (request_id, user_id, rating, score, satisfied, escalated, created_at,
                      updated_at)
SELECT id, '', rated.rating, rated.score, rated.score >= 4, rated.score = 1,
       started_at + interval '20 seconds', started_at + interval '20 seconds'
FROM inserted
CROSS JOIN LATERAL (
    SELECT (ARRAY['up', 'up', 'up', 'down', '5', '4', '3', '1'])[pick] AS rating,
           (ARRAY[5, 5, 5, 1, 5, 4, 3, 1])[pick] AS score
    FROM (SELECT 1 + floor(random() * 8)::int AS pick) AS drawn_rating
) AS rated
WHERE status = 200 AND random() < 0.02
"""


@dataclass(frozen=True, slots=True)
class Measurement:
    """One table size: what the windows held and what a round cost."""

    table_rows: int
    rows_last_5_min: int
    rows_last_hour: int
    feedback_last_24_h: int
    round_ms: list[float]
    reader_ms: dict[str, list[float]]


def admin_url(database_url: str) -> str:
    """The same server's ``postgres`` database, to drop and create the benchmark's own."""
    return database_url.rsplit("/", 1)[0] + "/postgres"


def database_name(database_url: str) -> str:
    return database_url.rsplit("/", 1)[1].split("?", 1)[0]


def drop_database(database_url: str) -> None:
    name = sql.Identifier(database_name(database_url))
    with psycopg.connect(admin_url(database_url), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


def recreate_database(database_url: str) -> None:
    """Start from nothing, so two runs never measure each other's leftovers."""
    drop_database(database_url)
    with psycopg.connect(admin_url(database_url), autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database_name(database_url)))
        )


def insert_rows(
    connection: psycopg.Connection, prefix: str, start: datetime, span: timedelta, count: int
) -> None:
    parameters = {"prefix": prefix, "start": start, "span_s": span.total_seconds(), "count": count}
    connection.execute(INSERT_ROWS, parameters)


def add_history(connection: psycopg.Connection, count: int, first_chunk: int) -> int:
    """Insert ``count`` history rows in chunks; returns the next free chunk number.

    Every chunk spans the whole 30 days, so growing the table adds rows throughout the
    history, not only after it.
    """
    chunk = first_chunk
    done = 0
    while done < count:
        size = min(HISTORY_CHUNK_ROWS, count - done)
        history_end = datetime.now(UTC) - HISTORY_GAP
        started = time.perf_counter()
        insert_rows(connection, f"h{chunk}-", history_end - HISTORY_SPAN, HISTORY_SPAN, size)
        done += size
        chunk += 1
        print(f"  history: +{size:,} rows in {time.perf_counter() - started:.1f} s "
              f"({done:,} of {count:,})", flush=True)  # fmt: skip
    return chunk


def refresh_recent(connection: psycopg.Connection, now: datetime) -> None:
    """Regenerate the last hour relative to ``now`` (its feedback goes with it, by cascade)."""
    connection.execute("DELETE FROM requests WHERE id LIKE %s", [RECENT_PREFIX + "%"])
    insert_rows(connection, RECENT_PREFIX, now - RECENT_WINDOW, RECENT_WINDOW, RECENT_ROWS)
    connection.execute("VACUUM ANALYZE requests")
    connection.execute("VACUUM ANALYZE feedback")


def count_rows(connection: psycopg.Connection, now: datetime) -> tuple[int, int, int, int]:
    """Rows in the table, in the last 5 minutes, in the last hour; feedback in the last day."""
    row = connection.execute(
        """SELECT (SELECT count(*) FROM requests),
                  (SELECT count(*) FROM requests WHERE started_at >= %(now)s - interval '5 minutes'
                                                   AND started_at < %(now)s),
                  (SELECT count(*) FROM requests WHERE started_at >= %(now)s - interval '1 hour'
                                                   AND started_at < %(now)s),
                  (SELECT count(*) FROM feedback WHERE created_at >= %(now)s - interval '24 hours'
                                                   AND created_at < %(now)s)""",
        {"now": now},
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


async def time_rounds(database_url: str, rounds: int) -> tuple[list[float], dict[str, list[float]]]:
    """Milliseconds per ``evaluate_round``, then per rule reader, ``rounds`` times each."""
    engine = create_engine(database_url)
    try:
        for _ in range(WARM_UP_ROUNDS):  # connections, prepared statements, alert state rows
            await evaluate_round(engine, DEFAULT_RULES, {}, datetime.now(UTC))
        round_ms = []
        for _ in range(rounds):
            started = time.perf_counter()
            await evaluate_round(engine, DEFAULT_RULES, {}, datetime.now(UTC))
            round_ms.append((time.perf_counter() - started) * 1000)
        reader_ms: dict[str, list[float]] = {rule.spec.name: [] for rule in DEFAULT_RULES}
        async with engine.connect() as connection:
            for _ in range(rounds):
                for rule in DEFAULT_RULES:
                    started = time.perf_counter()
                    await READERS[rule.kind](connection, rule, datetime.now(UTC))
                    reader_ms[rule.spec.name].append((time.perf_counter() - started) * 1000)
                await connection.rollback()
    finally:
        await engine.dispose()
    return round_ms, reader_ms


def measure(connection: psycopg.Connection, database_url: str, rounds: int) -> Measurement:
    refresh_recent(connection, datetime.now(UTC))
    table_rows, last_5_min, last_hour, feedback = count_rows(connection, datetime.now(UTC))
    round_ms, reader_ms = uvloop.run(time_rounds(database_url, rounds))
    return Measurement(table_rows, last_5_min, last_hour, feedback, round_ms, reader_ms)


def percentile(values: Sequence[float], fraction: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def table(measurements: Sequence[Measurement]) -> list[str]:
    rules = [rule.spec.name for rule in DEFAULT_RULES]
    lines = [
        "| rows in table | rows in last 5 min | rows in last hour | feedback in last 24 h | "
        "round median ms | round p95 ms | " + " | ".join(f"{name} ms" for name in rules) + " |",
        "|---" * (6 + len(rules)) + "|",
    ]
    for found in measurements:
        readers = " | ".join(f"{statistics.median(found.reader_ms[name]):.1f}" for name in rules)
        lines.append(
            f"| {found.table_rows:,} | {found.rows_last_5_min:,} | {found.rows_last_hour:,} | "
            f"{found.feedback_last_24_h:,} | {statistics.median(found.round_ms):.1f} | "
            f"{percentile(found.round_ms, 0.95):.1f} | {readers} |"
        )
    return lines


def growth(measurements: Sequence[Measurement]) -> str:
    """The one number that answers the question: largest table's round over the smallest's."""
    smallest, largest = measurements[0], measurements[-1]
    ratio = statistics.median(largest.round_ms) / statistics.median(smallest.round_ms)
    return (f"Round median at {largest.table_rows:,} rows / at {smallest.table_rows:,} rows: "
            f"{ratio:.2f}.")  # fmt: skip


INTRO = (
    "`make bench-alerts` (code in `bench/alerts_eval.py`) times one alert round (every\n"
    "built-in rule read, evaluated and saved, as the scheduler runs it) against a throwaway\n"
    "Postgres database at two table sizes. The windows' content is the same at both sizes:\n"
    "the last hour holds 10 requests/s (3,000 rows in the last 5 minutes), 2% of them rated;\n"
    "everything else is history spread over the 30 days before the last 24 hours, so only\n"
    "the size of `requests` (and `feedback`) changes. Rows carry no bodies. The last columns\n"
    "are each rule's reader alone (median ms). A round must cost the same at both sizes.\n"
)


def parse_rows(text: str) -> list[int]:
    sizes = sorted(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    if not sizes or sizes[0] < RECENT_ROWS:
        raise SystemExit(f"--rows: every size must be at least {RECENT_ROWS:,} (the last hour)")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=parse_rows, default=parse_rows("100000,5000000"),
                        help="table sizes to measure, ascending, comma-separated")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds per size")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help="a throwaway database: it is dropped and created again")  # fmt: skip
    parser.add_argument("--write", type=Path, help="replace or append this benchmark's section")
    parser.add_argument("--keep-database", action="store_true",
                        help="leave the filled database behind (for EXPLAIN); dropped by default")  # fmt: skip
    args = parser.parse_args()

    recreate_database(args.database_url)
    uvloop.run(upgrade_async(args.database_url))
    measurements: list[Measurement] = []
    history_rows, next_chunk = 0, 0
    try:
        with psycopg.connect(args.database_url, autocommit=True) as connection:
            postgres = f"Postgres {connection.info.parameter_status('server_version') or '?'}"
            for size in args.rows:
                print(f"growing requests to {size:,} rows", flush=True)
                needed = size - RECENT_ROWS - history_rows
                next_chunk = add_history(connection, needed, next_chunk)
                history_rows += needed
                measurements.append(measure(connection, args.database_url, args.rounds))
                print("\n".join(table(measurements)[-1:]), flush=True)
    finally:
        if not args.keep_database:
            drop_database(args.database_url)
    lines = [*table(measurements), "", growth(measurements)]
    print("\n".join(lines))
    if args.write:
        machine = (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        body = (f"Measured {time.strftime('%Y-%m-%d')} on {machine}, {postgres} on the same "
                f"machine; {args.rounds} rounds per size.\n\n" + "\n".join(lines))  # fmt: skip
        write_section(args.write, "alerts", SECTION_TITLE, INTRO, body)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
