"""A fake OpenAI-compatible judge for tests and demos (ASGI, serve it with ``start_server``).

Scores are deterministic and derived from the judged answer: ``quality=N`` anywhere in it scores
N on every criterion; otherwise a hash of the answer picks a score. ``script`` queues faults for the
next calls: an HTTP status (with headers, e.g. 429 + Retry-After), a reply that is not JSON, or
scores out of range. Bodies follow OpenAI's chat completion and error shapes.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from sidecar.judge.rubric import ANSWER_END, ANSWER_START
from sidecar.testing.servers import read_body

QUALITY_MARK = re.compile(r"quality=(\d+)")


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # "status", "garbage" or "out_of_range"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class FakeJudge:
    script: deque[Fault] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    served: int = 0

    def fail(self, status: int, times: int = 1, **headers: str) -> None:
        for _ in range(times):
            self.script.append(Fault("status", status, tuple(headers.items())))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        request = orjson.loads(body) if body else {}
        self.requests.append(request)
        fault = self.script.popleft() if self.script else None
        if fault is not None and fault.kind == "status":
            error = {"message": f"fake judge says {fault.status}", "type": "error",
                     "param": None, "code": fault.status}  # fmt: skip
            await _respond(send, fault.status, {"error": error}, fault.headers)
            return
        self.served += 1
        content = _verdict(request, fault.kind if fault else None)
        prompt = " ".join(str(m.get("content", "")) for m in request.get("messages", []))
        usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(content) // 4}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        await _respond(send, 200, {
            "id": f"chatcmpl-fakejudge-{self.served}", "object": "chat.completion",
            "created": int(time.time()), "model": request.get("model", "judge"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": usage,
        })  # fmt: skip


def _verdict(request: dict[str, Any], fault: str | None) -> str:
    if fault == "garbage":
        return "I think this answer is pretty good, maybe a 4?"
    schema = request["response_format"]["json_schema"]["schema"]["properties"]["scores"]
    low = min(c["minimum"] for c in schema["properties"].values())
    high = max(c["maximum"] for c in schema["properties"].values())
    text = request["messages"][-1]["content"]
    answer = text.split(ANSWER_START, 1)[-1].split(ANSWER_END, 1)[0]
    marked = QUALITY_MARK.search(answer)
    if fault == "out_of_range":
        score = high + 5
    elif marked:
        score = min(high, max(low, int(marked.group(1))))
    else:
        score = low + hashlib.sha256(answer.encode()).digest()[0] % (high - low + 1)
    scores = dict.fromkeys(schema["properties"], score)
    return orjson.dumps({"scores": scores, "rationale": f"fake judge: {score}"}).decode()


async def _respond(
    send: Any, status: int, body: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()
) -> None:
    raw = [(b"content-type", b"application/json"),
           *((k.encode(), v.encode()) for k, v in headers)]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": orjson.dumps(body)})
