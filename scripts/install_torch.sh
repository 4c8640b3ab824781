#!/usr/bin/env bash
# Install torch into the given interpreter's environment before anything else can ask for it.
#   - a machine without an NVIDIA GPU gets the CPU build (never a multi-GB CUDA stack);
#   - a machine with one gets the CUDA build pip resolves by default.
# Override with TORCH_SPEC (e.g. TORCH_SPEC="torch==2.5.1") and PIP_INDEX_URL / PIP_EXTRA_INDEX_URL as usual.
set -euo pipefail
PY="$1"
if "$PY" -c "import torch" 2>/dev/null; then
  echo "torch already installed: $("$PY" -c 'import torch; print(torch.__version__)')"
  exit 0
fi
SPEC="${TORCH_SPEC:-torch==2.13.0}"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "NVIDIA GPU found: installing $SPEC (CUDA build)"
  "$PY" -m pip install "$SPEC"
else
  echo "no GPU found: installing $SPEC (CPU build)"
  # The CPU wheel carries a '+cpu' local version; prefer a local file or a CPU index when one is configured.
  "$PY" -m pip install "$SPEC" ${TORCH_CPU_INDEX:+--index-url "$TORCH_CPU_INDEX"}
  if "$PY" -c "import torch,sys; sys.exit(0 if torch.version.cuda is None else 1)"; then
    echo "torch $("$PY" -c 'import torch; print(torch.__version__)') (CPU build) installed"
  else
    echo "warning: a CUDA build of torch was installed on a machine without a GPU;" \
         "set TORCH_CPU_INDEX to a CPU wheel index to avoid it" >&2
  fi
fi
