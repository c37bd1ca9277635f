"""A fake OpenAI-compatible judge on port 0, for the judge's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sidecar.testing.fake_judge import FakeJudge
from sidecar.testing.servers import RunningServer, start_server


@pytest.fixture
def judge() -> FakeJudge:
    return FakeJudge()


@pytest.fixture
def judge_server(judge: FakeJudge) -> Iterator[RunningServer]:
    server = start_server(judge)
    yield server
    server.stop()
