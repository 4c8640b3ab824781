# Two commands do everything on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv and install on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.graft-installed
OUT ?= outputs/demo
export TOKENIZERS_PARALLELISM ?= false
export WANDB_MODE ?= offline

.PHONY: install demo demo-bytelevel test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements/no-deps.txt scripts/install_torch.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	scripts/install_torch.sh $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps -r requirements/no-deps.txt
	$(PY) -c "import torch, transformers, colossalai, hydra, sentencepiece; print('graft env ok: torch', torch.__version__, 'transformers', transformers.__version__, 'colossalai', colossalai.__version__)"
	touch $(STAMP)

# Every stage (demo inputs, expand_vocab, init_model, prepare_data, train on 2 processes, evaluate) and the report.
demo: $(STAMP)
	$(PY) -m research.pipeline experiment=demo run_root=$(OUT)

# The same recipe on a byte-level BPE base: Tekken (Mistral-NeMo's tokenizer) and a tiny Mistral model.
demo-bytelevel: $(STAMP)
	$(PY) -m research.pipeline experiment=bytelevel run_root=outputs/bytelevel

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(PY) -m ruff check research kernels tests benchmarks

clean:
	rm -rf outputs multirun .pytest_cache
