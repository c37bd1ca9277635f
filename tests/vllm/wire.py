"""What two answers must share to count as "the same" for a client: bytes less ids, chunk shapes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from openai.types.chat import ChatCompletionMessageParam

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
_VARYING = re.compile(rb'"(id|created)":("[^"]*"|\d+)')

ChunkShape = tuple[int, tuple[str | None, ...], bool, bool]


def normalised(body: bytes) -> bytes:
    """The body with what vLLM varies per call (completion ``id``, ``created``) blanked."""
    return _VARYING.sub(rb'"\1":"*"', body)


def sse_events(body: bytes) -> list[bytes]:
    return [normalised(event) for event in body.split(b"\n\n") if event]


def chunk_shapes(chunks: Iterable[Any]) -> list[ChunkShape]:
    """Per SDK chunk: number of choices, their finish reasons, usage present, fingerprint present."""
    return [
        (
            len(chunk.choices),
            tuple(choice.finish_reason for choice in chunk.choices),
            chunk.usage is not None,
            chunk.system_fingerprint is not None,
        )
        for chunk in chunks
    ]


def outline(shapes: list[ChunkShape]) -> list[ChunkShape]:
    """``shapes`` with runs of equal shapes collapsed to one. When vLLM's API server falls behind
    its engine (both share two cores with the tests), it merges token deltas into fewer chunks
    (``RequestOutputCollector``), so the number of token chunks is not deterministic; the kinds
    of chunk and their order are."""
    return [shape for index, shape in enumerate(shapes) if index == 0 or shape != shapes[index - 1]]
