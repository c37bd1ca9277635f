from __future__ import annotations

import pytest

from sidecar.errors import JudgeRejected, JudgeUnavailable
from sidecar.judge.client import JudgeClient, retry_after_s
from sidecar.judge.rubric import DEFAULT_RUBRIC, JudgeInput, judge_messages, verdict_format
from sidecar.settings import JudgeSettings
from sidecar.testing.fake_judge import FakeJudge
from sidecar.testing.servers import RunningServer, bind_socket

MESSAGES = judge_messages(DEFAULT_RUBRIC, JudgeInput("Hi?", "Hello. quality=4"))
FORMAT = verdict_format(DEFAULT_RUBRIC)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client(url: str, sleeps: Sleeps, **changes: object) -> JudgeClient:
    settings = JudgeSettings(enabled=True, base_url=f"{url}/v1", model="judge-1", api_key="k",
                             timeout_s=5.0, **changes)  # type: ignore[arg-type]  # fmt: skip
    return JudgeClient(settings, sleep=sleeps)


async def test_a_verdict_comes_back_with_usage(
    judge_server: RunningServer, judge: FakeJudge
) -> None:
    judged = client(judge_server.url, Sleeps())
    reply = await judged.complete(MESSAGES, FORMAT)
    await judged.close()
    assert '"correctness":4' in (reply.text or "")
    assert reply.prompt_tokens > 0
    assert reply.attempts == 1
    sent = judge.requests[0]
    assert sent["model"] == "judge-1"
    assert sent["temperature"] == 0
    assert sent["response_format"]["type"] == "json_schema"


async def test_429_waits_exactly_retry_after(judge_server: RunningServer, judge: FakeJudge) -> None:
    judge.fail(429, 1, **{"retry-after": "7"})
    sleeps = Sleeps()
    judged = client(judge_server.url, sleeps)
    reply = await judged.complete(MESSAGES, FORMAT)
    await judged.close()
    assert sleeps.waits == [7.0]
    assert reply.attempts == 2


async def test_5xx_backs_off_exponentially_then_gives_up(
    judge_server: RunningServer, judge: FakeJudge
) -> None:
    judge.fail(503, times=10)
    sleeps = Sleeps()
    judged = client(judge_server.url, sleeps, max_retries=3)
    with pytest.raises(JudgeUnavailable, match="failed 4 times") as error:
        await judged.complete(MESSAGES, FORMAT)
    await judged.close()
    assert sleeps.waits == [0.5, 1.0, 2.0]
    assert error.value.attempts == 4


async def test_a_4xx_is_rejected_without_retrying(
    judge_server: RunningServer, judge: FakeJudge
) -> None:
    judge.fail(401)
    sleeps = Sleeps()
    judged = client(judge_server.url, sleeps)
    with pytest.raises(JudgeRejected, match="401"):
        await judged.complete(MESSAGES, FORMAT)
    await judged.close()
    assert sleeps.waits == []


async def test_a_judge_that_is_down_is_unavailable() -> None:
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    judged = client(f"http://127.0.0.1:{port}", Sleeps(), max_retries=1)
    with pytest.raises(JudgeUnavailable, match="APIConnectionError"):
        await judged.complete(MESSAGES, FORMAT)
    await judged.close()


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_s({"retry-after": "3"}, 0.0) == 3.0
    assert retry_after_s({"retry-after": "Thu, 01 Jan 1970 00:00:10 GMT"}, 4.0) == 6.0
    assert retry_after_s({"retry-after": "soon"}, 0.0) is None
    assert retry_after_s({}, 0.0) is None
