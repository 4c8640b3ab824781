"""The same config on datatrove's other executors: Ray (a local Ray instance, when ray is installed) gives the
local executor's bytes; Slurm builds job arrays from the config, whose pickled executor a node can load."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from research.config import to_object
from research.data.demo_corpus import build_demo_corpus
from research.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
OVERRIDES = ["buckets=five", "data.max_length=512", "data.pack.window_packs=8", "data.num_workers=2"]


def _compose(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("prepare_data", overrides=overrides)


def _digest(out: Path) -> str:
    files = sorted(p for p in (out / "buckets").rglob("*") if p.is_file()) + [out / "rejects.jsonl"]
    return hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in files)).hexdigest()


@pytest.mark.slow
def test_ray_executor_gives_the_local_executors_bytes(tmp_path, tokenizer_dir):
    pytest.importorskip("ray")
    build_demo_corpus(tmp_path / "inputs" / "corpus", seed=5, num_reviews=120, num_wiki=30, num_news=30)
    digests = []
    for executor in ("local", "ray"):
        cmd = [sys.executable, "-m", "research.prepare_data", f"run_root={tmp_path}", f"out_dir={tmp_path}/{executor}",
               f"paths.tokenizer={tokenizer_dir}", f"data.engine.executor={executor}", *OVERRIDES]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        digests.append(_digest(tmp_path / executor))
    assert digests[0] == digests[1]


def test_slurm_executor_is_built_from_the_config_and_a_node_can_load_it(tmp_path):
    import dill

    from research.data.engine import GraftStep, build_executor

    with pytest.raises(ConfigError, match="data.engine.slurm.partition=''"):
        to_object(_compose([f"run_root={tmp_path}", "data.engine.executor=slurm"]))
    cfg = to_object(_compose([f"run_root={tmp_path}", "data.engine.executor=slurm", "data.engine.slurm.partition=cpu",
                              "data.engine.slurm.time=01:30:00", "data.engine.slurm.cpus_per_task=4",
                              "data.num_workers=8", "+data.engine.slurm.sbatch_args={account: lm}"]))
    records = build_executor(cfg, "records", 20, tmp_path / "work", [f"shard {i}" for i in range(20)])
    tokenize = build_executor(cfg, "tokenize", 20, tmp_path / "work", [f"shard {i}" for i in range(20)],
                              depends=records)
    assert tokenize.depends is records and tokenize.world_size == 20
    script = tokenize.get_launch_file_contents(tokenize.get_sbatch_args(20), "launch_pickled_pipeline x")
    for line in ("#SBATCH --partition=cpu", "#SBATCH --time=01:30:00", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --array=0-19%8", "#SBATCH --account=lm", "#SBATCH --job-name=graft_tokenize"):
        assert line in script, script
    # what a node runs: the executor unpickled from its file, its one step a GraftStep of this stage
    node = dill.loads(dill.dumps(tokenize))
    assert isinstance(node.pipeline[0], GraftStep) and node.pipeline[0].stage == "tokenize"
    assert node.pipeline[0].cfg.data.engine.slurm.partition == "cpu"


def test_ray_executor_without_ray_is_one_line(tmp_path, monkeypatch):
    from research.data.engine import build_executor
    from research.errors import GraftError

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    cfg = to_object(_compose([f"run_root={tmp_path}", "data.engine.executor=ray"]))
    with pytest.raises(GraftError, match="ray package is not installed"):
        build_executor(cfg, "records", 2, tmp_path / "work", ["a", "b"])
