"""Every SQL example in the docs runs on a migrated Postgres database (docs that cannot rot)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from sidecar.store.migrate import upgrade
from tests.helpers import sync_url

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLES = [
    (path.name, block.strip())
    for path in sorted(DOCS.glob("*.md"))
    for block in re.findall(r"```sql\n(.*?)```", path.read_text(), re.DOTALL)
]


def test_the_docs_have_at_least_ten_sql_examples() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.postgres
def test_every_sql_example_runs(make_postgres_database: Callable[[], str]) -> None:
    url = make_postgres_database()
    upgrade(url)
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            for name, query in EXAMPLES:
                try:
                    connection.execute(sa.text(query), {"id": "x"}).all()
                except sa.exc.DBAPIError as exc:
                    pytest.fail(f"{name}: {query}\n{exc}")
    finally:
        engine.dispose()
