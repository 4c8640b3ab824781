"""`python -m research.collect_sweep` on a folder that holds one run, not a sweep: one line, exit 2, nothing
written."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from research.collect_sweep import main as collect

ROOT = Path(__file__).resolve().parents[1]


def run_root(d: Path, cache: Path) -> Path:
    """What a pipeline leaves in its run root: stages.json, summary.json, links to stage folders with summaries."""
    (cache / "eval").mkdir(parents=True)
    (cache / "eval" / "summary.json").write_text("{}")
    root = d / "run"
    root.mkdir(parents=True)
    (root / "stages.json").write_text(json.dumps({"evaluate": {"dir": str(cache / "eval")}}))
    (root / "summary.json").write_text("{}")
    (root / "eval").symlink_to(cache / "eval")
    return root


def test_a_plain_run_root_is_a_one_line_error_and_nothing_is_written(tmp_path):
    root = run_root(tmp_path, tmp_path / "cache")
    before = sorted(p.name for p in root.iterdir())
    proc = subprocess.run([sys.executable, "-m", "research.collect_sweep", str(root)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {root}: one run's folder (it has its own stages.json)")
    assert sorted(p.name for p in root.iterdir()) == before


@pytest.mark.parametrize("marker", ["summary.json", ".hydra"])
def test_one_job_of_a_sweep_is_not_a_sweep_either(tmp_path, capsys, marker):
    job = tmp_path / "0"
    (job / "train").mkdir(parents=True)
    (job / "train" / "summary.json").write_text("{}")
    (job / marker).mkdir() if marker == ".hydra" else (job / marker).write_text("{}")
    assert collect([str(job)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"it has its own {marker}" in err
    assert not list(job.glob("sweep.*"))


def test_latest_skips_run_roots(tmp_path, capsys):
    parent = tmp_path / "outputs"
    parent.mkdir()
    run_root(parent, tmp_path / "cache")  # parent/run: a run root, and no sweep beside it
    assert collect([str(parent / "latest")]) == 2
    assert "no sweep folder under" in capsys.readouterr().err
