"""`python -m research.pipeline experiment=bytelevel` end to end at toy size: Tekken converted from tiktoken format,
a tiny Mistral base, continued-BPE expansion, init, data, training and evaluation, and the report."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEKKEN = 131072
NEW = 256

pytestmark = pytest.mark.slow


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from research.data.demo_corpus import build_demo_corpus

    tmp = tmp_path_factory.mktemp("bytelevel")
    corpus = tmp / "corpus"
    build_demo_corpus(corpus, seed=7, num_reviews=150, num_wiki=30, num_news=30)
    overrides = [
        "experiment=bytelevel", "logger=none", "pipeline.nproc=1", f"run_root={tmp / 'run'}",
        f"pipeline.cache_dir={tmp / 'cache'}",
        "demo.pretrain_steps=3", "demo.pretrain_batch_size=2", "demo.en_passages=60",
        "demo.pretrain_en_passages=60",
        "demo.heldout_eval_chars=1500", "init.diagnostics_chars=1500",
        f"tokenizer.target_size={TEKKEN + NEW}", "tokenizer.sources.0.max_sentences=3000",
        "tokenizer.eval_max_chars=10000",
        f"data.inputs.0.path={corpus}/zh_news.jsonl", f"data.inputs.1.path={corpus}/zh_reviews.jsonl",
        f"data.inputs.2.path={corpus}/en_wiki.jsonl", "data.max_length=128", "buckets=five", "data.num_workers=1",
        "schedule.stages.0.steps=2", "schedule.stages.1.steps=1", "train.micro_batch_size=2",
        "train.checkpoint_every=0", "model.fused_ce=true",
        "eval.datasets.0.limit=1", "eval.methods=[first_token,loglik]", "eval.heldout_max_chars=1500",
        "eval.max_length=256",
    ]
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", WANDB_MODE="disabled")
    r = subprocess.run([sys.executable, "-m", "research.pipeline", *overrides], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp / "run"


def test_every_stage_runs_on_the_byte_level_base(run):
    stages = read(run / "stages.json")
    assert list(stages) == ["demo_inputs", "expand_vocab", "init_model", "prepare_data", "train", "evaluate"]
    d = {name: Path(s["dir"]) for name, s in stages.items()}
    inputs = read(d["demo_inputs"] / "summary.json")
    assert inputs["base_tokenizer"]["kind"] == "tekken" and inputs["base_tokenizer"]["size"] == TEKKEN
    config = read(d["init_model"] / "config.json")
    assert config["architectures"] == ["MistralForCausalLM"] and config["vocab_size"] == TEKKEN + NEW
    tok = read(d["expand_vocab"] / "tokenizer.json")
    assert tok["model"]["type"] == "BPE" and len(tok["model"]["vocab"]) + len(tok["added_tokens"]) >= TEKKEN + NEW
    train = read(d["train"] / "summary.json")
    assert train["steps"] == 3 and train["fused_ce"] is True


def test_report_has_tekken_compression_before_and_after(run):
    s = read(run / "summary.json")
    assert s["tokenizer"]["final_size"] == TEKKEN + NEW and s["tokenizer"]["new_pieces"] == NEW
    zh, en = s["tokenizer"]["compression"]["zh"], s["tokenizer"]["compression"]["en"]
    assert zh["expanded_tokens_per_char"] < zh["base_tokens_per_char"] and en["ratio"] == 1.0
    assert s["eval"]["datasets"]["mmlu"]["loglik"]["n"] == 4 and set(s["eval"]["heldout"]) == {"zh", "en"}
    assert "## Tokenizer" in (run / "report" / "report.md").read_text(encoding="utf-8")


def test_demo_inputs_refuses_a_base_model_without_a_row_per_tekken_token(tmp_path):
    from tests.conftest import assert_one_line_error, run_app

    proc = run_app("demo_inputs", f"run_root={tmp_path}", "demo.base_tokenizer=tekken", "model.vocab_size=32000")
    assert_one_line_error(proc, "model.vocab_size=32000", "131072 tokens")
    assert not (tmp_path / "inputs").exists()
