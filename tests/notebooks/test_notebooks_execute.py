"""Every notebook in notebooks/ runs top to bottom on the outputs of real tiny sweeps (nbclient, a fresh kernel)."""

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture(scope="session")
def kernel_env(tmp_path_factory):
    """A `python3` kernelspec that starts this interpreter (the project's venv), found first through JUPYTER_PATH,
    so a system-wide python3 kernel without the project's packages is never picked."""
    d = tmp_path_factory.mktemp("jupyter")
    spec = d / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (graft)", "language": "python"}))
    return {"JUPYTER_PATH": str(d)}


def execute(name: str, env: dict, monkeypatch) -> nbformat.NotebookNode:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # The kernel's inline backend shows figures as image/png outputs; a non-interactive MPLBACKEND would hide them.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(ROOT)}}).execute()
    return nb


def text_of(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") + "".join(str(v) for k, v in o.get("data", {}).items() if k == "text/plain"))
    return "\n".join(out)


def images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.parametrize("name", ["tokenizer_compression", "init_strategies", "sweep_report"])
def test_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "GRAFT_SWEEP_DIR" in params[0].source
    assert nb.metadata.kernelspec.name == "python3"


def test_tokenizer_compression(tiny_sweeps, kernel_env, monkeypatch):
    nb = execute("tokenizer_compression", {**kernel_env, "GRAFT_SWEEP_DIR": str(tiny_sweeps["vocab"])}, monkeypatch)
    text = text_of(nb)
    assert "2 of 2 jobs finished" in text and "32300" in text and "32000" in text
    assert images(nb) >= 1


def test_tokenizer_compression_from_summary_files(tiny_sweeps, kernel_env, monkeypatch):
    files = sorted(str(p) for p in (tiny_sweeps["cache"] / "expand_vocab").glob("*/summary.json"))
    assert len(files) == 2
    nb = execute("tokenizer_compression", {**kernel_env, "GRAFT_SWEEP_DIR": "/nonexistent",
                                           "GRAFT_TOKENIZER_SUMMARIES": ":".join(files)}, monkeypatch)
    assert "32300" in text_of(nb) and images(nb) >= 1


def test_init_strategies(tiny_sweeps, kernel_env, monkeypatch):
    nb = execute("init_strategies", {**kernel_env, "GRAFT_SWEEP_DIR": str(tiny_sweeps["init"]),
                                     "GRAFT_ZOOM_STEPS": "3"}, monkeypatch)
    text = text_of(nb)
    assert "runs: ['zero', 'random']" in text and "zh_news" in text
    assert images(nb) >= 2  # total loss, per category


def test_sweep_report(tiny_sweeps, kernel_env, monkeypatch, tmp_path):
    import shutil

    # A copy, so the notebook's own collection (no sweep.csv yet) does not race the collector tests.
    sweep = tmp_path / "sweep"
    shutil.copytree(tiny_sweeps["init"], sweep, symlinks=True)
    for f in ("sweep.csv", "sweep.md", "sweep.png"):
        (sweep / f).unlink(missing_ok=True)
    nb = execute("sweep_report", {**kernel_env, "GRAFT_SWEEP_DIR": str(sweep)}, monkeypatch)
    text = text_of(nb)
    assert "collecting the sweep now" in text and "2 jobs, 2 ok" in text and "train.final_loss" in text
    assert (sweep / "sweep.csv").is_file() and images(nb) >= 1
