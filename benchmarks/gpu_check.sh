#!/usr/bin/env bash
# On a CUDA machine, from the repository root: the GPU tests of kernels/, then the GPU benchmark grid.
# Liger-Kernel / Cut Cross-Entropy wheels in .whl/ are installed to /tmp/site first when present.
# Logs, the table and the CSV rows go to $OUT (default benchmarks/results/gpu_check).
set -uo pipefail
OUT=${OUT:-benchmarks/results/gpu_check}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} TRITON_INTERPRET=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"
timeout 110 python3 -m pytest tests/kernels/test_lce_gpu.py -q -p no:cacheprovider -rs 2>&1 | tee "$OUT/pytest_gpu.log"
timeout 210 python3 benchmarks/cross_entropy.py --device cuda --csv "$OUT/cross_entropy.csv" \
  --table "$OUT/cross_entropy_gpu.md" 2>&1 | tee "$OUT/bench_gpu.log"
