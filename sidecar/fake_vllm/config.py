"""Settings of the fake vLLM server; mutable so a test can change them while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field


def default_lora_modules() -> dict[str, str]:
    return {"support": "/adapters/support", "legal": "/adapters/legal"}


@dataclass
class FakeVllmConfig:
    """What ``vllm serve`` flags the fake pretends to have been started with, plus fault knobs.

    ``lora_modules`` is the live adapter table: runtime load/unload edits this dict.
    """

    served_model_name: str = "tiny"
    max_model_len: int = 512
    lora_modules: dict[str, str] = field(default_factory=default_lora_modules)
    allow_runtime_lora: bool = True
    api_key: str | None = None
    enable_request_id_headers: bool = False
    latency_s: float = 0.0
    chunk_delay_s: float = 0.0
    error_rate: float = 0.0
    reset_after_chunks: int | None = None
    outputs: list[str] | None = None
    default_max_tokens: int = 16
    version: str = "0.32.0"
    seed: int = 0
