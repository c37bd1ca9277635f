"""The fake's "model": an approximate tokenizer and deterministic gibberish (pure functions).

Token boundaries: leading whitespace joins the next word, and words are cut every six
characters, so ``"hello"`` is one token and a chat turn saying ``"hello"`` is ten prompt tokens,
as on the captured server.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

VOCAB_SIZE = 32000
TOKEN_PATTERN = re.compile(r"\s*\S{1,6}|\s+")
GIBBERISH = (
    "style", "FILE", " optim", "ction", "ue", " sep", "mult", "reakpoint", "cessed", " say",
    "ser", " world", "ll", "Q", " something", "pect", "number", " host", " the", " of",
    "ing", " and", "ed", " to", " in", " model", "er", " data", "tion", " a", "ly", " is",
    " for", "es", " on", " with", "al", " that", "ic", " by", "ent", " from", "ist", " as",
    "ation", " be", " at", "or", " this", " an", " are", "ive", " which", " not", "ity",
    " or", " have", "ous", " it", " one", "ment", " can", " more", " will",
)  # fmt: skip
BOS = "<s>"
TURN_START = "<|im_start|>"
TURN_END = "<|im_end|>"


@lru_cache(maxsize=4096)
def split_tokens(text: str) -> tuple[str, ...]:
    """Cut ``text`` into token-sized pieces whose concatenation is ``text``."""
    return tuple(TOKEN_PATTERN.findall(text))


@lru_cache(maxsize=4096)
def count_tokens(text: str) -> int:
    return len(split_tokens(text))


def message_text(message: Any) -> str:
    """The text of one chat message (a string, or the ``text`` parts of a content list)."""
    if not isinstance(message, Mapping):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return ""


def chat_prompt_tokens(messages: Sequence[Any]) -> int:
    """Prompt length of a chat: BOS, four template tokens per turn, four for the reply header."""
    return 5 + sum(4 + count_tokens(message_text(message)) for message in messages)


def chat_template_tokens(messages: Sequence[Any]) -> list[str]:
    """The token strings behind :func:`chat_prompt_tokens` (for ``/tokenize``)."""
    tokens = [BOS]
    for message in messages:
        role = message.get("role", "user") if isinstance(message, Mapping) else "user"
        tokens += [TURN_START, str(role), "\n", *split_tokens(message_text(message)), TURN_END]
    return [*tokens, "\n", TURN_START, "assistant", "\n"]


def token_id(token: str) -> int:
    return zlib.crc32(token.encode()) % VOCAB_SIZE


def detokenize(token_ids: Iterable[int]) -> str:
    return "".join(GIBBERISH[token % len(GIBBERISH)] for token in token_ids)


@lru_cache(maxsize=8192)
def gibberish(key: bytes, count: int) -> tuple[str, ...]:
    """``count`` tokens drawn from a fixed vocabulary, fully determined by ``key``."""
    tokens: list[str] = []
    block = 0
    while len(tokens) < count:
        digest = hashlib.blake2b(key, digest_size=64, salt=block.to_bytes(16, "little")).digest()
        tokens.extend(GIBBERISH[byte % len(GIBBERISH)] for byte in digest[: count - len(tokens)])
        block += 1
    return tuple(tokens)


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, str | None]:
    """``text`` up to the earliest stop string (excluded), and that string, or no match."""
    best: tuple[int, str] | None = None
    for candidate in stop:
        if candidate:
            position = text.find(candidate)
            if position >= 0 and (best is None or position < best[0]):
                best = (position, candidate)
    if best is None:
        return text, None
    return text[: best[0]], best[1]


def fingerprint(version: str, model: str, seed: int) -> str:
    """``system_fingerprint`` as 0.32.0 prints it by default: ``vllm-<version>-<hash8>``."""
    digest = hashlib.blake2b(f"{model}:{seed}".encode(), digest_size=4).hexdigest()
    return f"vllm-{version}-{digest}"
