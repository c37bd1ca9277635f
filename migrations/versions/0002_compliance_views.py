"""Report views: format compliance by schema, model and adapter, per hour and per day.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = {"compliance_hourly": "hour", "compliance_daily": "day"}
VERDICTS = ("valid", "invalid", "unparseable", "truncated", "schema_error")


def _view(name: str, unit: str, dialect: str) -> str:
    if dialect == "postgresql":
        bucket = f"date_trunc('{unit}', started_at)"
        counts = ",\n       ".join(
            f"count(*) FILTER (WHERE schema_verdict = '{verdict}') AS {verdict}"
            for verdict in VERDICTS
        )
        rate = "round(100.0 * count(*) FILTER (WHERE schema_verdict = 'valid') / count(*), 2)"
    else:
        pattern = "%Y-%m-%d %H:00:00" if unit == "hour" else "%Y-%m-%d 00:00:00"
        bucket = f"strftime('{pattern}', started_at)"
        counts = ",\n       ".join(
            f"sum(CASE WHEN schema_verdict = '{verdict}' THEN 1 ELSE 0 END) AS {verdict}"
            for verdict in VERDICTS
        )
        rate = (
            "round(100.0 * sum(CASE WHEN schema_verdict = 'valid' THEN 1 ELSE 0 END) / count(*), 2)"
        )
    return f"""CREATE VIEW {name} AS
SELECT {bucket} AS {unit}, schema_name, model, adapter,
       count(*) AS checked,
       {counts},
       {rate} AS valid_pct
FROM requests
WHERE schema_verdict IS NOT NULL
GROUP BY {bucket}, schema_name, model, adapter"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, unit in VIEWS.items():
        op.execute(_view(name, unit, dialect))


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
