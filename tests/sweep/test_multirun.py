"""Real multiruns of the pipeline (tiny settings, see tiny_sweeps.py) and the collector on their outputs."""

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from research.collect_sweep import main as collect
from research.sweep.jobs import FAILED, MISSING, OK, load_sweep, resolve_dir
from research.sweep.params import expand
from tests.sweep.tiny_sweeps import TINY_SIZE

ROOT = Path(__file__).resolve().parents[2]


def job_dirs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())


def read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_init_sweep_runs_one_pipeline_per_strategy_sharing_the_tokenizer(tiny_sweeps):
    sweep = tiny_sweeps["init"]
    jobs = job_dirs(sweep)
    assert [j.name for j in jobs] == ["0", "1"]
    overrides = [yaml.safe_load((j / ".hydra" / "overrides.yaml").read_text()) for j in jobs]
    # Hydra numbered the jobs in the order research.sweep.params.expand predicts (the collector relies on it).
    mr = yaml.safe_load((sweep / "multirun.yaml").read_text())
    assert expand(mr["hydra"]["sweeper"]["params"], mr["hydra"]["overrides"]["task"]) == overrides
    assert [o[0] for o in overrides] == ["init=zero", "init=random"]
    assert all("logger.group=init_strategy" in o for o in overrides)

    stages = [read(j / "stages.json") for j in jobs]
    summaries = [read(j / "summary.json") for j in jobs]
    # One tokenizer for both jobs, built by the vocab sweep and reused from the shared cache.
    assert stages[0]["expand_vocab"]["dir"] == stages[1]["expand_vocab"]["dir"]
    assert stages[0]["expand_vocab"]["reused"] and stages[1]["expand_vocab"]["reused"]
    assert stages[0]["prepare_data"]["dir"] == stages[1]["prepare_data"]["dir"]
    assert not stages[0]["prepare_data"]["reused"] and stages[1]["prepare_data"]["reused"]
    for name in ("init_model", "train"):
        assert stages[0][name]["dir"] != stages[1][name]["dir"] and not stages[1][name]["reused"]
    for strategy, st, s in zip(("zero", "random"), stages, summaries, strict=True):
        assert read(Path(st["init_model"]["dir"]) / "summary.json")["strategy"] == strategy
        assert s["init"]["strategy"] == strategy and s["tokenizer"]["final_size"] == TINY_SIZE
        assert s["train"]["steps"] == 6 and math.isfinite(s["train"]["final_loss"])
        metrics = [json.loads(line) for line in (Path(st["train"]["dir"]) / "metrics.jsonl").read_text().splitlines()]
        assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    # Each job's run root links its stages' folders (what `python -m research.<app> run_root=<job>` reads).
    assert all((j / "train" / "metrics.jsonl").is_file() for j in jobs)
    first = [read(Path(st["init_model"]["dir"]) / "summary.json") for st in stages]
    assert first[0]["new_size"] == first[1]["new_size"] == TINY_SIZE


@pytest.mark.slow
def test_vocab_sweep_base_size_leaves_the_tokenizer_unchanged(tiny_sweeps):
    by_size = {}
    for j in job_dirs(tiny_sweeps["vocab"]):
        s = read(j / "summary.json")
        by_size[s["tokenizer"]["final_size"]] = (j, s)
    assert sorted(by_size) == [32000, TINY_SIZE]
    job, s = by_size[32000]
    assert s["tokenizer"]["new_pieces"] == 0
    assert all(c["ratio"] == 1.0 for c in s["tokenizer"]["compression"].values())
    tok_dir = Path(read(job / "stages.json")["expand_vocab"]["dir"])
    base = tiny_sweeps["inputs"] / "base_tokenizer" / "tokenizer.model"
    assert (tok_dir / "tokenizer.model").read_bytes() == base.read_bytes()
    _, s = by_size[TINY_SIZE]
    assert s["tokenizer"]["compression"]["zh"]["ratio"] < 1.0 == s["tokenizer"]["compression"]["en"]["ratio"]


@pytest.fixture
def sweep_copy(tiny_sweeps, tmp_path):
    """A private copy of the init sweep (its links into the cache still resolve: stages.json paths are absolute)."""
    dst = tmp_path / "init_strategy" / "2026-01-01_00-00-00"
    shutil.copytree(tiny_sweeps["init"], dst, symlinks=True)
    return dst


def rows(sweep: Path) -> list[dict]:
    with (sweep / "sweep.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_collector_writes_table_and_plot(sweep_copy):
    r = subprocess.run([sys.executable, "-m", "research.collect_sweep", str(sweep_copy)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "2 ok, 0 failed or missing; swept init" in r.stdout
    table = rows(sweep_copy)
    assert [(t["job"], t["init"], t["status"]) for t in table] == [("0", "zero", OK), ("1", "random", OK)]
    summaries = [read(sweep_copy / t["job"] / "summary.json") for t in table]
    for t, s in zip(table, summaries, strict=True):
        assert float(t["train.final_loss"]) == pytest.approx(s["train"]["final_loss"])
        assert float(t["tokenizer.zh.ratio"]) == s["tokenizer"]["compression"]["zh"]["ratio"]
        assert float(t["train.stages.knowledge_replay.by_category.zh_news"]) == pytest.approx(
            s["train"]["stages"]["knowledge_replay"]["by_category"]["zh_news"])
    md = (sweep_copy / "sweep.md").read_text()
    assert "| job | init | train.final_loss |" in md and "| 1 | random |" in md
    assert (sweep_copy / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    # `latest` is the newest sweep folder under its parent.
    assert resolve_dir(sweep_copy.parent / "latest") == sweep_copy


@pytest.mark.slow
def test_collector_lists_failed_and_missing_jobs(sweep_copy, capsys):
    (sweep_copy / "1" / "summary.json").unlink()
    (sweep_copy / "1" / "logs").mkdir(exist_ok=True)
    (sweep_copy / "1" / "logs" / "train.log").write_text("step 3\nerror: paths.data='x': dataset folder not found\n")
    shutil.rmtree(sweep_copy / "0")
    assert collect([str(sweep_copy)]) == 0
    out = capsys.readouterr().out
    assert "0 ok, 2 failed or missing" in out
    table = {t["init"]: t for t in rows(sweep_copy)}
    assert table["random"]["status"] == FAILED and "no summary.json" in table["random"]["reason"]
    assert "dataset folder not found" in table["random"]["reason"]
    assert table["zero"]["status"] == MISSING and table["zero"]["job"] == "(0)"
    md = (sweep_copy / "sweep.md").read_text()
    assert "**failed**: no summary.json" in md and "**missing**" in md
    sweep = load_sweep(sweep_copy)
    assert sweep.expected == 2 and not sweep.ok


def test_collector_bad_input_is_one_line(tmp_path, capsys):
    assert collect([str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    (tmp_path / "empty").mkdir()
    assert collect([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no jobs found" in err
    job = tmp_path / "broken" / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- init=zero\n")
    (job / "summary.json").write_text("{not json")
    other = tmp_path / "broken" / "1"
    (other / ".hydra").mkdir(parents=True)
    (other / ".hydra" / "overrides.yaml").write_text("- [unclosed\n")
    (other / "summary.json").write_text('{"train": {"final_loss": 2.5}}')
    (tmp_path / "broken" / "multirun.yaml").write_text("hydra: [unclosed\n")
    assert collect([str(tmp_path / "broken")]) == 0
    t0, t1 = rows(tmp_path / "broken")
    assert t0["status"] == FAILED and "summary.json unreadable" in t0["reason"]
    assert t1["status"] == FAILED and "overrides.yaml: unreadable" in t1["reason"]
