"""`python -m research.pipeline` end to end on a tiny configuration: every stage, the report, reuse, a failure."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["demo_inputs", "expand_vocab", "init_model", "prepare_data", "train", "evaluate"]
LINKS = {"demo_inputs": "inputs", "expand_vocab": "tokenizer", "init_model": "model", "prepare_data": "data",
         "train": "train", "evaluate": "eval"}

pytestmark = pytest.mark.slow


def tiny(corpus: Path) -> list[str]:
    """Every stage at toy size: 5 pre-training steps, 500 new pieces from jieba's list, a few hundred documents,
    two training stages of 2 steps, 4 MMLU questions and a little held-out text."""
    return [
        "experiment=demo", "logger=none", "pipeline.nproc=1",
        "demo.pretrain_steps=5", "demo.pretrain_batch_size=2", "demo.en_passages=100",
        "demo.pretrain_en_passages=200",
        "demo.heldout_eval_chars=1500", "init.diagnostics_chars=1500",
        "tokenizer=wordlist", "tokenizer.target_size=32500", "tokenizer.consistency_lines=50",
        "tokenizer.eval_max_chars=10000",
        f"data.inputs.0.path={corpus}/zh_news.jsonl", f"data.inputs.1.path={corpus}/zh_reviews.jsonl",
        f"data.inputs.2.path={corpus}/en_wiki.jsonl", "data.max_length=256", "buckets=five", "data.num_workers=1",
        "schedule.stages.0.steps=2", "schedule.stages.1.steps=2", "train.micro_batch_size=2",
        "train.checkpoint_every=0",
        "eval.datasets.0.limit=1", "eval.methods=[first_token,loglik]", "eval.heldout_max_chars=1500",
        "eval.max_length=256",
    ]


def pipeline(tmp: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", WANDB_MODE="disabled")
    cmd = [sys.executable, "-m", "research.pipeline", f"run_root={tmp / name}", f"pipeline.cache_dir={tmp / 'cache'}",
           *tiny(tmp / "corpus"), *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    from research.data.demo_corpus import build_demo_corpus

    d = tmp_path_factory.mktemp("pipeline")
    build_demo_corpus(d / "corpus", seed=7, num_reviews=200, num_wiki=40, num_news=40)
    return d


@pytest.fixture(scope="module")
def first(tmp):
    r = pipeline(tmp, "run1")
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp / "run1"


@pytest.fixture(scope="module")
def second(tmp, first):
    r = pipeline(tmp, "run2", "init=mvn")
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp / "run2"


def test_first_run_builds_every_stage_in_the_cache(first, tmp):
    stages = read(first / "stages.json")
    assert list(stages) == STAGES
    for name, s in stages.items():
        folder = Path(s["dir"])
        assert not s["reused"] and s["seconds"] > 0 and len(s["key"]) == 16
        assert folder == tmp / "cache" / name / s["key"] and (folder / "summary.json").is_file()
        assert (first / LINKS[name]).resolve() == folder.resolve()  # the apps' own paths work on the run root
        assert (first / "logs" / f"{name}.log").stat().st_size > 0
    assert (Path(stages["train"]["dir"]) / "final" / "config.json").is_file()


def test_each_stage_read_the_folders_of_the_stages_before_it(first):
    stages = read(first / "stages.json")
    d = {name: s["dir"] for name, s in stages.items()}
    train = read(Path(d["train"]) / "summary.json")
    assert train["steps"] == 4 and [s["name"] for s in train["stages"]] == ["knowledge_injection", "knowledge_replay"]
    ev = read(Path(d["evaluate"]) / "summary.json")
    assert ev["model_path"] == f"{d['train']}/final"
    model = read(Path(d["init_model"]) / "summary.json")
    assert model["base_model"] == f"{d['demo_inputs']}/base_model" and model["new_size"] == 32500
    manifest = read(Path(d["prepare_data"]) / "manifest.json")
    assert manifest["max_length"] == 256 and manifest["num_buckets"] == 5


def test_report_and_summary(first):
    report = first / "report"
    text = (report / "report.md").read_text(encoding="utf-8")
    for section in ("## Stages", "## Tokenizer", "## Embedding initialisation", "At step 0", "## Data", "## Training",
                    "## Evaluation", "### held-out text"):
        assert section in text, section
    for png in ("loss.png", "compression.png", "stage_times.png", "eval_mmlu.png"):
        data = (report / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, png
        assert f"({png})" in text
    s = read(first / "summary.json")
    assert s["stages"] == read(first / "stages.json")
    assert "init=mvn" not in s["overrides"] and "tokenizer=wordlist" in s["overrides"]
    assert s["tokenizer"]["final_size"] == 32500 and set(s["tokenizer"]["compression"]) == {"zh", "en"}
    assert s["tokenizer"]["compression"]["zh"]["ratio"] < 1.0 <= s["tokenizer"]["compression"]["en"]["ratio"] + 1e-9
    losses = s["train"]["stages"]
    assert list(losses) == ["knowledge_injection", "knowledge_replay"]
    assert all(0 < v["loss"] < 20 and v["by_category"] for v in losses.values())
    assert s["eval"]["datasets"]["mmlu"]["loglik"]["n"] == 4
    step0 = s["init"]["step0"]  # init_model's step-0 diagnostics, carried to the run's summary and report
    assert set(step0) >= {"zh", "en", "kl", "new_token_mass"} and step0["en"]["base_bits_per_byte"] > 0
    assert step0["kl"] >= 0 and 0 <= step0["new_token_mass"] < 1
    assert set(s["eval"]["heldout"]) == {"zh", "en"}
    assert all(h["bits_per_byte"] > 0 for h in s["eval"]["heldout"].values())


def test_an_init_sweep_reuses_inputs_tokenizer_and_data(first, second):
    a, b = read(first / "stages.json"), read(second / "stages.json")
    for name in ("demo_inputs", "expand_vocab", "prepare_data"):
        assert b[name]["reused"] and b[name]["key"] == a[name]["key"] and b[name]["dir"] == a[name]["dir"], name
        assert b[name]["built_seconds"] == a[name]["built_seconds"]
    for name in ("init_model", "train", "evaluate"):
        assert not b[name]["reused"] and b[name]["key"] != a[name]["key"], name
    assert not (second / "logs" / "expand_vocab.log").exists()  # a reused stage does not run at all
    assert read(Path(b["init_model"]["dir"]) / "summary.json")["strategy"] == "mvn"
    # The first run's folders are untouched: both runs' links still point at complete stages.
    assert read(Path(a["init_model"]["dir"]) / "summary.json")["strategy"] == "subword_mean"
    assert (first / "model").resolve() != (second / "model").resolve()
    assert (first / "data").resolve() == (second / "data").resolve()


def test_a_failing_stage_stops_with_one_line(tmp, second):
    missing = tmp / "no_such_text.txt"
    r = pipeline(tmp, "run3", "init=mvn", f"+eval.heldout_texts.fr={missing}")
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len([ln for ln in err if ln.startswith("error: ")]) == 1 and err[-1].startswith("error: ")
    assert "Traceback" not in r.stderr
    log = tmp / "run3" / "logs" / "evaluate.log"
    assert err[-1].startswith("error: stage evaluate failed (exit status 2): ")
    assert str(missing) in err[-1] and err[-1].endswith(f"(log: {log})")
    stages = read(tmp / "run3" / "stages.json")  # what ran before the failure is recorded, all reused
    assert list(stages) == STAGES[:-1] and all(s["reused"] for s in stages.values())
    assert not (tmp / "run3" / "report").exists()
