"""Report views for SQL users: daily traffic, hourly latency, daily feedback, error summary.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

On SQLite ``hourly_latency`` has no percentile columns (SQLite has no percentile function);
``sidecar report latency`` gives the same percentiles on both databases.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = ("daily_traffic", "hourly_latency", "daily_feedback", "error_summary")


def _views(postgres: bool) -> dict[str, str]:
    day = "date_trunc('day', started_at)" if postgres else "strftime('%Y-%m-%d', started_at)"
    hour = (
        "date_trunc('hour', started_at)" if postgres else "strftime('%Y-%m-%d %H:00', started_at)"
    )
    feedback_day = (
        "date_trunc('day', f.created_at)" if postgres else "strftime('%Y-%m-%d', f.created_at)"
    )
    failed = "CASE WHEN status >= 500 OR error_kind LIKE 'upstream%' THEN 1 ELSE 0 END"
    true = "true" if postgres else "1"
    percentiles = (
        ",\n       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_ms"
        ",\n       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_ms"
        ",\n       percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99_ms"
        ",\n       percentile_cont(0.95) WITHIN GROUP (ORDER BY ttft_ms) AS ttft_p95_ms"
        if postgres
        else ""
    )
    return {
        "daily_traffic": f"""
SELECT {day} AS day, model, adapter,
       count(*) AS requests,
       sum({failed}) AS errors,
       sum(CASE WHEN stream = {true} THEN 1 ELSE 0 END) AS streams,
       coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
       coalesce(sum(completion_tokens), 0) AS completion_tokens
FROM requests GROUP BY {day}, model, adapter""",
        "hourly_latency": f"""
SELECT {hour} AS hour, model, adapter,
       count(*) AS requests,
       avg(latency_ms) AS mean_ms,
       max(latency_ms) AS max_ms{percentiles}
FROM requests WHERE status < 500 GROUP BY {hour}, model, adapter""",
        "daily_feedback": f"""
SELECT {feedback_day} AS day, r.model, r.adapter,
       count(*) AS rated,
       sum(CASE WHEN f.satisfied = {true} THEN 1 ELSE 0 END) AS satisfied,
       sum(CASE WHEN f.escalated = {true} THEN 1 ELSE 0 END) AS escalated,
       avg(f.score) AS mean_score
FROM feedback f JOIN requests r ON r.id = f.request_id
GROUP BY {feedback_day}, r.model, r.adapter""",
        "error_summary": """
SELECT error_kind, status, model,
       count(*) AS requests,
       min(started_at) AS first_seen,
       max(started_at) AS last_seen,
       max(error_message) AS example
FROM requests WHERE error_kind IS NOT NULL OR status >= 400
GROUP BY error_kind, status, model""",
    }


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, body in _views(postgres).items():
        op.execute(f"CREATE VIEW {name} AS {body.strip()}")


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
