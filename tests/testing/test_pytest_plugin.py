"""The pytest plugin works outside this project: a team's own test gets a sidecar in front of a
fake vLLM, logging to its own SQLite file."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

A_TEAMS_TEST = """
import httpx
import sqlalchemy as sa

pytest_plugins = ["sidecar.testing.pytest_plugin"]


def test_my_config_logs_a_chat(sidecar, database_url):
    body = {"model": "support", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    response = httpx.post(f"{sidecar.proxy_url}/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 200
    sidecar.stop()  # drains the spool into the database
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        adapter = connection.execute(sa.text("SELECT adapter FROM requests")).scalar_one()
    assert adapter == "support"


def test_the_sink_receives_posts(sink):
    app, server = sink
    httpx.post(f"{server.url}/hook", json={"ok": True}, timeout=10)
    assert app.received["/hook"] == [{"ok": True}]
"""


@pytest.mark.slow
def test_a_conftest_naming_the_plugin_gets_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_team=A_TEAMS_TEST)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=2)
