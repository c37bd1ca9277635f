#!/usr/bin/env bash
# `make run`: serve the sidecar on :8080 in front of $SIDECAR_UPSTREAM_URL (default 127.0.0.1:8000).
# With no upstream configured and nothing listening on :8000, start the fake vLLM there first.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

port_open() { "$BIN/python" -c "import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(('127.0.0.1', $1)))"; }

if [[ -z "${SIDECAR_UPSTREAM_URL:-}" ]] && ! port_open 8000; then
  echo "No SIDECAR_UPSTREAM_URL and nothing on 127.0.0.1:8000: starting the fake vLLM there (sidecar fake-vllm)."
  "$BIN/sidecar" fake-vllm --port 8000 &
  fake_pid=$!
  trap 'kill $fake_pid 2>/dev/null || true' EXIT
  for _ in $(seq 50); do port_open 8000 && break; sleep 0.1; done
fi

"$BIN/sidecar" db upgrade
echo "Proxy on http://127.0.0.1:8080/v1 (point your OpenAI client here), metrics on http://127.0.0.1:8081/metrics"
exec_status=0
"$BIN/sidecar" serve "$@" || exec_status=$?
exit $exec_status
