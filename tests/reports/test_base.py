"""Reports over a fixed data set, against hand-computed answers, on SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sidecar.records import Feedback, LoggedRequest, TimeWindow
from sidecar.reports.base import REPORTS, ReportOptions, parse_since, run_report
from sidecar.reports.catalog import load_reports
from sidecar.reports.render import as_csv, as_json
from sidecar.store.feedback import upsert_feedback
from sidecar.store.writes import insert_requests

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
load_reports()


def row(n: int, *, model: str = "support", adapter: str | None = "support", latency: float = 100.0,
        status: int = 200, error_kind: str | None = None, minutes_ago: int = 10,
        verdict: str | None = None, ttft: float | None = None) -> LoggedRequest:  # fmt: skip
    return LoggedRequest(
        id=f"{n:032x}", client_request_id=None, completion_id=f"chatcmpl-{n}",
        started_at=NOW - timedelta(minutes=minutes_ago), method="POST",
        path="/v1/chat/completions", status=status, latency_ms=latency, ttfb_ms=None,
        ttft_ms=ttft, upstream_ms=None, stream=ttft is not None, model=model, base_model="tiny",
        adapter=adapter, prompt_tokens=10, completion_tokens=5, total_tokens=15,
        finish_reason="stop", request_body=None, response_body=None, error_kind=error_kind,
        error_message="boom" if error_kind else None, cancelled=False, client_key_hash=None,
        body_policy="none", schema_name="support_triage" if verdict else None,
        schema_verdict=verdict, schema_error_count=0 if verdict else None, schema_errors=None,
    )  # fmt: skip


ROWS = [
    *(row(i, latency=float(10 * i), verdict="valid") for i in range(1, 11)),  # 10..100 ms
    row(11, latency=500.0, verdict="invalid", ttft=50.0),
    row(12, model="tiny", adapter=None, status=502, error_kind="upstream_unreachable"),
    row(13, model="tiny", adapter=None, minutes_ago=60 * 30),  # outside a 24h window
]
WINDOW = TimeWindow(since=NOW - timedelta(hours=24), until=NOW)


@pytest.fixture
async def loaded(engine: AsyncEngine) -> AsyncEngine:
    await insert_requests(engine, ROWS)
    for n, rating, score, escalated in (
        (1, "up", 5, False),
        (2, "down", 1, True),
        (3, "4", 4, False),
    ):
        await upsert_feedback(engine, Feedback(f"{n:032x}", "u", rating, score, score >= 4, escalated,
                                               None, NOW, NOW))  # fmt: skip
    return engine


async def report(
    engine: AsyncEngine,
    name: str,
    window: TimeWindow = WINDOW,
    options: ReportOptions | None = None,
) -> list[dict[str, object]]:
    return (await run_report(engine, name, window, options, timeout_s=10)).records()


async def test_traffic_counts_requests_errors_and_tokens(loaded: AsyncEngine) -> None:
    rows = await report(loaded, "traffic")
    assert [(r["model"], r["requests"], r["errors"], r["completion_tokens"]) for r in rows] == [
        ("support", 11, 0, 55), ("tiny", 1, 1, 5),
    ]  # fmt: skip


async def test_latency_percentiles_match_a_hand_computation(loaded: AsyncEngine) -> None:
    rows = await report(loaded, "latency")
    support = next(r for r in rows if r["model"] == "support")
    # 10, 20, ..., 100, 500 ms: inclusive percentiles p50 = 60, p95 = 300, p99 = 460.
    assert (support["requests"], support["p50_ms"], support["p95_ms"], support["p99_ms"]) == (
        11,
        60.0,
        300.0,
        460.0,
    )
    assert support["ttft_p50_ms"] == 50.0
    assert all(r["model"] != "tiny" for r in rows)  # the only recent tiny request failed


async def test_errors_and_compliance_and_feedback(loaded: AsyncEngine) -> None:
    errors = await report(loaded, "errors")
    assert [(r["error_kind"], r["status"], r["requests"], r["example"]) for r in errors] == [
        ("upstream_unreachable", 502, 1, "boom"),
    ]  # fmt: skip
    compliance = await report(loaded, "compliance")
    assert [(r["checked"], r["valid"], r["invalid"], r["valid_pct"]) for r in compliance] == [
        (11, 10, 1, 90.91)
    ]
    feedback = await report(loaded, "feedback")
    assert feedback == [{"model": "support", "adapter": "support", "rated": 3, "satisfied_pct": 66.7,
                         "escalated_pct": 33.3, "mean_score": 3.33}]  # fmt: skip


async def test_filters_and_hourly_buckets(loaded: AsyncEngine) -> None:
    only_tiny = TimeWindow(since=NOW - timedelta(days=3), until=NOW, model="tiny")
    rows = await report(loaded, "traffic", only_tiny, ReportOptions(group_by="hour"))
    assert [(r["time"], r["requests"]) for r in rows] == [
        ("2026-11-19 06:00", 1),
        ("2026-11-20 11:00", 1),
    ]


async def test_outputs_render_as_csv_and_json(loaded: AsyncEngine) -> None:
    table = await run_report(loaded, "errors", WINDOW, timeout_s=10)
    assert as_csv(table).splitlines()[0] == "error_kind,status,model,requests,last_seen,example"
    assert '"error_kind": "upstream_unreachable"' in as_json(table)


def test_every_report_is_registered_and_since_parses() -> None:
    assert set(REPORTS) >= {"compliance", "traffic", "latency", "errors", "feedback"}
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("2026-11-01", NOW) == datetime(2026, 11, 1, tzinfo=UTC)


async def test_cost_report_on_measured_traffic(loaded: AsyncEngine) -> None:
    from sidecar.settings import ApiPrice, CostSettings

    prices = {"per-call": ApiPrice(input_per_million_usd=0.0, output_per_million_usd=2000.0)}
    cost = CostSettings(gpu_monthly_usd=200.0, api_prices=prices, system_prompt_tokens=0)
    window = TimeWindow(since=NOW - timedelta(hours=24), until=NOW)
    table = await run_report(loaded, "cost", window, ReportOptions(cost=cost), timeout_s=10)
    rows = {row["option"]: row for row in table.records()}
    # 5 completion tokens x $2000 / 1M = $0.01 per call: the seed's worked example -> 20,000/month.
    assert rows["per-call"]["cost_per_1k_queries_usd"] == 10.0
    assert rows["per-call"]["break_even_queries_per_month"] == 20_000
    assert rows["self-hosted (GPU)"]["monthly_usd"] == 200.0
    assert {"gpt-4o", "gpt-4o-mini", "ft:gpt-4o-mini"} <= set(rows)
    assert any(
        "per-call is cheaper" in note or "Self-hosting is cheaper than per-call" in note
        for note in table.notes
    )


async def test_cost_table_prints_cheap_models_per_1000_queries_and_a_short_window_in_hours(
    loaded: AsyncEngine,
) -> None:
    from rich.console import Console

    from sidecar.reports.cost import window_length
    from sidecar.reports.render import as_text
    from sidecar.settings import CostSettings

    window = TimeWindow(since=NOW - timedelta(hours=3), until=NOW)
    table = await run_report(
        loaded, "cost", window, ReportOptions(cost=CostSettings()), timeout_s=10
    )
    rows = {row["option"]: row for row in table.records()}
    # 10 prompt x $0.15 + 5 completion x $0.60 per 1M tokens = $0.0000045 a query
    assert rows["gpt-4o-mini"]["cost_per_1k_queries_usd"] == 0.0045
    assert "generations over 1.0 hours:" in table.notes[0]  # first row to now, at least 1 h
    console = Console(width=200, record=True)
    as_text(table, console)
    mini = next(line for line in console.export_text().splitlines() if "gpt-4o-mini " in line)
    assert "0.0045" in mini
    assert window_length(2.5) == "2.5 days"
    assert window_length(0.25) == "6.0 hours"


async def test_sql_views_answer_like_the_reports(loaded: AsyncEngine) -> None:
    import sqlalchemy as sa

    async with loaded.connect() as connection:
        traffic = (await connection.execute(sa.text(
            "SELECT model, sum(requests), sum(errors), sum(completion_tokens) FROM daily_traffic "
            "GROUP BY model ORDER BY model"))).all()  # fmt: skip
        latency = (await connection.execute(sa.text(
            "SELECT sum(requests), max(max_ms) FROM hourly_latency WHERE model = 'support'"))).one()  # fmt: skip
        feedback = (await connection.execute(sa.text(
            "SELECT sum(rated), sum(satisfied), sum(escalated) FROM daily_feedback"))).one()  # fmt: skip
        errors = (await connection.execute(sa.text(
            "SELECT error_kind, requests FROM error_summary"))).all()  # fmt: skip
    assert [tuple(row) for row in traffic] == [("support", 11, 0, 55), ("tiny", 2, 1, 10)]
    assert tuple(latency) == (11, 500.0)
    assert tuple(feedback) == (3, 2, 1)
    assert [tuple(row) for row in errors] == [("upstream_unreachable", 1)]
