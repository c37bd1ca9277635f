#!/usr/bin/env bash
# Start the real `vllm serve` (installed by setup.sh) on 127.0.0.1, serving the tiny model as
# `tiny` with the LoRA adapters `support` and `legal`; `extra` stays on disk for runtime loading.
#
#   scripts/vllm_cpu/serve.sh [PORT]          (default 8000; extra arguments go to vllm serve)
#
#   VLLM_CPU_HOME       as for setup.sh
#   VLLM_CPU_SO_CONFIG  --structured-outputs-config value; default xgrammar without whitespace, so
#                       a random model closes json_schema objects; set it empty to use vLLM's default
#
# It execs vLLM, so the PID it starts with is the API server's: SIGTERM to it (or to its process
# group) stops the whole tree in a few seconds.
set -euo pipefail

home_dir="${VLLM_CPU_HOME:-$HOME/.cache/vllm-sidecar/vllm-cpu}"
venv="$home_dir/venv"
data="$home_dir/data"
port="${1:-8000}"
shift || true

if [[ ! -x "$venv/bin/vllm" || ! -f "$data/model/config.json" ]]; then
  echo "vllm-cpu is not set up in $home_dir: run scripts/vllm_cpu/setup.sh first" >&2
  exit 1
fi

# Keep vLLM's internal sockets on loopback, never touch a model hub, send no usage statistics.
export VLLM_HOST_IP=127.0.0.1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
export VLLM_ALLOW_RUNTIME_LORA_UPDATING=True

so_args=()
default_so_config='{"backend":"xgrammar","disable_any_whitespace":true}'
so_config="${VLLM_CPU_SO_CONFIG-$default_so_config}"
[[ -z "$so_config" ]] || so_args=(--structured-outputs-config "$so_config")

exec "$venv/bin/vllm" serve "$data/model" \
  --host 127.0.0.1 --port "$port" \
  --served-model-name tiny \
  --dtype float32 --max-model-len 512 --max-num-seqs 16 --enforce-eager \
  --enable-lora --max-lora-rank 8 --max-loras 2 \
  --lora-modules "support=$data/lora-support" "legal=$data/lora-legal" \
  "${so_args[@]}" "$@"
