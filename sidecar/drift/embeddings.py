"""Sentence vectors of prompts and outputs, from a model that ships inside its wheel.

The ``static`` model is WordLlama's ``l2_supercat`` at 256 dimensions (package ``wordllama``,
MIT; ``pip install 'vllm-sidecar[embeddings]'``): a token-embedding table distilled from
LLM input embeddings, so a text's vector is the mean of its tokens' rows, normalised. No
torch, no network: :func:`load_embedder` points ``WordLlama.load`` at the package's own
weight and tokenizer files with downloads disabled (its default lookup misses the bundled
tokenizer and would go to the hub).

The log writer embeds, per row, the last user message and the output *as stored*, so the
body policy holds (``bodies: none``: nothing to embed, no vector). A vector is stored as
:data:`PACKED_BYTES` bytes: one format byte, then int8 components scaled by the largest one
(the direction is all that counts; :func:`unpack` renormalises). Cosine similarity survives
the round trip to about 1e-4.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from sidecar.drift.features import content_text
from sidecar.drift.text import clip_text
from sidecar.errors import ConfigError
from sidecar.records import JsonValue, LoggedRequest

FloatArray = npt.NDArray[np.float32]
Field = Literal["prompt", "output"]
EMBEDDING_FEATURES: dict[Field, str] = {"prompt": "prompt_embedding", "output": "output_embedding"}

STATIC_CONFIG = "l2_supercat"  # the model whose files the wordllama wheel carries
STATIC_DIM = 256
STATIC_FORMAT = 1  # first byte of a packed vector: static model, int8 components
PACKED_BYTES = 1 + STATIC_DIM  # 257 bytes per field and row
MAX_EMBED_CHARS = 2000  # longer text: its first and last 1,000 characters (bounded cost)
MAX_CACHED_WORDS = 200_000  # per process (~30 MB at worst); emptied when full
INT8_MAX = 127


@dataclass(frozen=True, slots=True)
class StaticEmbedder:
    """Mean of the text's token vectors (WordLlama's average pooling), unit length.

    Text is tokenized word by word (split at whitespace), each word's token ids cached: the
    tokenizer's pieces never span a space, so this gives WordLlama's own ids for text with
    single spaces, for a dictionary lookup per known word (one tokenizer call per request
    costs ~100 us on its own; the whole row now costs ~60 us, docs/benchmarks.md).
    """

    table: npt.NDArray[np.float32]
    tokenizer: Any  # tokenizers.Tokenizer (untyped)
    name: str = "static"
    format: int = STATIC_FORMAT
    word_ids: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)

    def embed(self, text: str) -> FloatArray | None:
        """The unit vector of ``text``; None when it has no tokens."""
        ids: list[int] = []
        cache = self.word_ids
        for word in clip_text(text, MAX_EMBED_CHARS).split():
            found = cache.get(word)
            if found is None:
                if len(cache) >= MAX_CACHED_WORDS:
                    cache.clear()
                found = cache[word] = tuple(
                    self.tokenizer.encode(word, add_special_tokens=False).ids
                )
            ids.extend(found)
        if not ids:
            return None
        vector: FloatArray = self.table.take(np.asarray(ids, dtype=np.intp), axis=0).mean(0)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 and np.isfinite(norm) else None


@functools.cache
def load_embedder(model: str) -> StaticEmbedder:
    """The named model, loaded once per process from the installed package's files.

    Raises :class:`ConfigError` when the model is unknown or the extra is not installed.
    """
    if model != "static":
        raise ConfigError(f"drift.embeddings.model: {model!r} is not implemented; use static")
    spec = importlib.util.find_spec("wordllama")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "drift.embeddings.enabled needs the embeddings extra: "
            "pip install 'vllm-sidecar[embeddings]'"
        )
    from wordllama import WordLlama

    package = Path(spec.origin).parent  # holds weights/ and tokenizers/, as load() looks there
    loaded = WordLlama.load(STATIC_CONFIG, dim=STATIC_DIM, cache_dir=package,
                            disable_download=True)  # fmt: skip
    tokenizer = loaded.tokenizer
    tokenizer.no_padding()
    table = np.ascontiguousarray(loaded.embedding, dtype=np.float32)
    return StaticEmbedder(table, tokenizer)


def pack(vector: FloatArray, fmt: int = STATIC_FORMAT) -> bytes:
    """One format byte and the int8 components (scaled by the largest absolute one)."""
    peak = float(np.max(np.abs(vector)))
    scaled = np.rint(vector * (INT8_MAX / peak)) if peak > 0 else np.zeros_like(vector)
    return bytes([fmt]) + scaled.astype(np.int8).tobytes()


def unpack(blob: object, fmt: int = STATIC_FORMAT, dim: int = STATIC_DIM) -> FloatArray | None:
    """The unit vector in ``blob``; None for another model's format, a wrong size or zeros."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        return None
    data = bytes(blob)
    if len(data) != 1 + dim or data[0] != fmt:
        return None
    vector = np.frombuffer(data, dtype=np.int8, offset=1).astype(np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else None


def prompt_text(body: JsonValue) -> str | None:
    """The last user message of a chat request (or the last completions prompt)."""
    if not isinstance(body, dict):
        return None
    messages = body.get("messages")
    if isinstance(messages, list):
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        return content_text(users[-1].get("content")) if users else None
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        prompt = next((item for item in reversed(prompt) if isinstance(item, str)), None)
    return prompt if isinstance(prompt, str) else None


def output_text(body: JsonValue) -> str | None:
    """The first choice's answer text (chat ``message.content`` or completions ``text``)."""
    choices = body.get("choices") if isinstance(body, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(first, dict):
        return None
    message = first.get("message")
    if isinstance(message, dict):
        return content_text(message.get("content"))
    text = first.get("text")
    return text if isinstance(text, str) else None


def field_text(row_body: JsonValue, field: Field) -> str | None:
    """The text a field's vector is made from, in a stored request or response body."""
    return prompt_text(row_body) if field == "prompt" else output_text(row_body)


def embed_row(
    row: LoggedRequest, embedder: StaticEmbedder, fields: Sequence[Field]
) -> tuple[bytes | None, bytes | None]:
    """(prompt vector, output vector) packed, from the bodies as stored; never raises."""
    packed: dict[Field, bytes | None] = {"prompt": None, "output": None}
    try:
        texts = {
            field: text
            for field in fields
            if (text := field_text(row.request_body if field == "prompt" else row.response_body,
                                   field)) and not text.isspace()
        }  # fmt: skip
        for field, text in texts.items():
            vector = embedder.embed(text)
            packed[field] = None if vector is None else pack(vector, embedder.format)
    except Exception:  # a body nobody foresaw must not stop the log writer
        return None, None
    return packed["prompt"], packed["output"]
