"""Client traffic round-robin over replicas with the real `openai` SDK, from a few threads.

Every request carries a unique ticket (in the prompt, and as the client's ``X-Request-Id``), so
a row, a judge call and a client's answer can be matched. A request counts as acknowledged only
when the client got all of it: a parsed completion, or a stream up to its finish reason.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam

from tests.replicas.cluster import Replica

TICKET_PATTERN = r"ticket-\d+-\d+"


@dataclass
class Traffic:
    replicas: Sequence[Replica]
    threads: int = 4
    pause_s: float = 0.02
    acknowledged: dict[str, str] = field(default_factory=dict)  # ticket -> X-Request-Id
    failed: list[str] = field(default_factory=list)  # tickets without a complete answer
    served_by: Counter[str] = field(default_factory=Counter)  # proxy URL -> acknowledged
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), name=f"traffic-{index}")
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)

    def _run(self, index: int) -> None:
        clients: dict[str, openai.OpenAI] = {}
        sent = 0
        try:
            while not self._stop.is_set():
                sent += 1
                url = self.replicas[(index + sent) % len(self.replicas)].proxy_url
                if url not in clients:
                    clients[url] = openai.OpenAI(
                        base_url=f"{url}/v1", api_key="client-key", max_retries=0, timeout=10
                    )
                ticket = f"ticket-{index}-{sent}"
                request_id = send(clients[url], ticket, stream=sent % 4 == 0)
                with self._lock:
                    if request_id is None:
                        self.failed.append(ticket)
                    else:
                        self.acknowledged[ticket] = request_id
                        self.served_by[url] += 1
                time.sleep(self.pause_s)
        finally:
            for client in clients.values():
                client.close()


def send(client: openai.OpenAI, ticket: str, *, stream: bool) -> str | None:
    """The sidecar's X-Request-Id when the whole answer arrived, else None."""
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": f"Order {ticket} has not arrived. What can I do?"}
    ]
    create = client.chat.completions.with_raw_response.create
    headers = {"X-Request-Id": ticket}
    try:
        if stream:
            raw_stream = create(model="tiny", messages=messages, max_tokens=8, stream=True,
                                extra_headers=headers)  # fmt: skip
            chunks = list(raw_stream.parse())
            complete = any(chunk.choices and chunk.choices[0].finish_reason for chunk in chunks)
            request_id = raw_stream.headers["x-request-id"]
        else:
            raw = create(model="tiny", messages=messages, max_tokens=8, extra_headers=headers)
            complete = bool(raw.parse().choices)
            request_id = raw.headers["x-request-id"]
    except (openai.APIError, httpx.HTTPError):
        return None
    return request_id if complete else None
