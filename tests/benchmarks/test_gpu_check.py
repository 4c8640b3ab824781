"""benchmarks/gpu_check.sh and its helpers in benchmarks/train_throughput.py, on CPU: the dry run without a GPU
(one line, exit status 2, nothing written), the time budgets, the install line shared with scripts/gpu_wheels.sh,
the size of the 1.3B model it trains, the check of the killed-and-resumed run and the summary table."""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
BASH = shutil.which("bash")


def _throughput():
    spec = importlib.util.spec_from_file_location("train_throughput", ROOT / "benchmarks" / "train_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dry_run(tmp_path, bin_dir: Path, **env):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    t0 = time.monotonic()
    r = subprocess.run([BASH, str(SCRIPT)], cwd=cwd, capture_output=True, text=True, timeout=120,
                       env={"PATH": str(bin_dir), "OUT": str(tmp_path / "out"), "WORK": str(tmp_path / "work"),
                            "SITE": str(tmp_path / "site"), **env})
    elapsed = time.monotonic() - t0
    lines = (r.stdout + r.stderr).splitlines()
    # Nothing written: no $OUT, no $WORK, no $SITE, nothing in the working directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "cwd"] and not list(cwd.iterdir())
    return r, lines, elapsed


@pytest.mark.parametrize("nvidia_smi", [None, "exit 1"], ids=["no-nvidia-smi", "nvidia-smi-fails"])
def test_without_a_gpu_it_stops_at_once_with_one_line(tmp_path, nvidia_smi):
    bin_dir = tmp_path / "bin"  # a PATH without nvidia-smi (or with one that fails)
    bin_dir.mkdir()
    if nvidia_smi:
        (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\n{nvidia_smi}\n")
        (bin_dir / "nvidia-smi").chmod(0o755)
    r, lines, elapsed = _dry_run(tmp_path, bin_dir)
    assert r.returncode == 2 and r.stdout == ""
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no NVIDIA GPU here"), lines
    assert elapsed < 3, f"took {elapsed:.1f} s"


def test_when_torch_sees_no_gpu_it_stops_with_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("torch sees a GPU here")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")  # a driver that answers, a torch that sees nothing
    (bin_dir / "nvidia-smi").chmod(0o755)
    r, lines, _ = _dry_run(tmp_path, bin_dir, PYTHON=sys.executable)
    assert r.returncode == 2 and r.stdout == ""
    assert len(lines) == 1 and "torch.cuda.is_available() is false" in lines[0], lines


def test_budgets_fit_8_minutes():
    text = SCRIPT.read_text()
    budget = {k: int(v) for k, v in re.findall(r"\[(\w+)\]=(\d+)", re.search(r"BUDGET=\((.*?)\)", text, re.S)[1])}
    order = re.search(r"^PARTS=\((.*?)\)", text, re.M)[1].split()
    assert order == re.findall(r"^part (\w+) ", text, re.M) == list(budget)  # each part, in order, has a budget
    total, reserve = (int(re.search(rf"^{k}=(\d+)$", text, re.M)[1]) for k in ("TOTAL", "RESERVE"))
    assert total == 480 and sum(budget.values()) + reserve <= total
    assert budget["train_bench"] // len(_throughput().GPU_CASES) >= 30  # a fifth of it per case


def _allowed(name: str, elapsed: int, total: int = 480) -> int:
    """The `allowed` function of gpu_check.sh, run with its PARTS and BUDGET after `elapsed` seconds."""
    text = SCRIPT.read_text()
    setup = "\n".join([re.search(r"^PARTS=.*$", text, re.M)[0], re.search(r"^declare -A BUDGET=\(.*?\)$", text,
                                                                        re.M | re.S)[0],
                       re.search(r"^allowed\(\) \{.*?^\}$", text, re.M | re.S)[0]])
    script = f"{setup}\nTOTAL={total} RESERVE=10 SCALE=1\nSECONDS={elapsed}\nallowed {name}\n"
    return int(subprocess.run([BASH, "-c", script], capture_output=True, text=True, check=True).stdout)


def test_a_part_gets_its_budget_and_what_earlier_parts_left():
    assert _allowed("setup", 0) == 480 - 10 - (460 - 30)  # 40: its 30 s and the 10 s the budgets leave free
    assert _allowed("train_bench", 100) == 480 - 10 - 100 - (60 + 40)  # 270: parts before it took 100 s of 280
    assert _allowed("evaluate", 430) == 40  # parts before it used all of theirs: its own budget
    assert _allowed("evaluate", 450) == 20  # they overran (kill grace): it gets what is left
    assert _allowed("train_run", 10, total=0) == 60  # no overall limit (a CPU rehearsal): the budget


def test_install_line_is_the_one_gpu_wheels_prints():
    wheels = (ROOT / "scripts" / "gpu_wheels.sh").read_text()
    printed = re.search(r"^INSTALL='(.*)'$", wheels, re.M)[1]
    line = next(ln.strip() for ln in SCRIPT.read_text().splitlines() if ".whl/pinned/*.whl" in ln and "pip" in ln)
    line = line.removesuffix("|| return 1").strip().replace('"$PY"', "python3").replace('"$SITE"', "/tmp/gpu_check_site")
    assert line == printed
    assert not re.search(r"(?<![\w-])(torch|triton|nvidia[-\w]*)==", wheels)  # the image has them: never carried


def test_the_1b3_model_size():
    import torch
    import transformers

    tt = _throughput()
    m = tt.model_spec("llama_1b3")
    h, V, L, i = m.hidden_size, m.vocab_size, m.num_hidden_layers, m.intermediate_size
    assert (h, V, L, i, m.num_attention_heads, m.max_position_embeddings) == (2048, 32000, 24, 5504, 16, 4096)
    by_hand = 2 * V * h + L * (4 * h * h + 3 * h * i + 2 * h) + h
    assert tt.param_count(m) == by_hand == 1_345_423_360
    with torch.device("meta"):  # the shape only: no memory, no initialisation
        model = transformers.LlamaForCausalLM(tt.llama_config(m))
    assert sum(p.numel() for p in model.parameters()) == by_hand
    assert "1,345,423,360" in (ROOT / "conf" / "model" / "llama_1b3.yaml").read_text()


def _jsonl(path: Path, losses: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"step": s, "loss": v}) + "\n" for s, v in losses.items()))


def test_check_resume(tmp_path):
    tt = _throughput()
    run = tmp_path / "run"
    _jsonl(run / "metrics_before_kill.jsonl", {1: 5.0, 2: 4.0, 3: 3.5, 4: 3.0})
    _jsonl(run / "train" / "metrics.jsonl", {1: 5.0, 2: 4.0, 3: 3.5001, 4: 3.0, 5: 2.8, 6: 2.7})
    (run / "train" / "summary.json").write_text(json.dumps({"steps": 6, "final_loss": 2.7}))
    (run / "train" / "final").mkdir()
    (run / "train" / "final" / "config.json").write_text("{}")
    log = tmp_path / "resumed.log"
    log.write_text("INFO resumed from /x/checkpoints/step_00000002 (step 2, stage pretrain)\n")
    got = tt.check_resume(run, log)
    assert got["ok"] and got["resumed_from_step"] == 2 and got["redone_steps"] == [3, 4]
    assert got["max_rel_loss_diff"] == pytest.approx(0.0001 / 3.5)
    log.write_text("no resume\n")  # started over instead of resuming
    assert not tt.check_resume(run, log)["ok"]


def test_summary_table(tmp_path):
    tt = _throughput()
    (tmp_path / "parts.tsv").write_text("setup\tok\t12\t35\ntrain_bench\tpartial\t150\t165\ntrain_run\tok\t41\t60\n"
                                        "evaluate\ttimed out\t40\t40\n")
    (tmp_path / "train_run.json").write_text(json.dumps({
        "steps": [1, 2, 3, 4, 5, 6], "final_step": 6, "resumed_from_step": 2, "redone_steps": [3, 4],
        "max_rel_loss_diff": 3.94e-06, "final_model": True, "ok": True}))
    (tmp_path / "env.txt").write_text("python 3.11.7\ntorch 2.11.0 cuda 13.0 device NVIDIA H200\nmissing modules: none\n")
    rows = [{"case": "ddp", "status": "ok", "tokens_per_s": 123456.7, "mfu": 0.4123, "peak_memory_gb": 61.23},
            {"case": "gemini", "status": "failed (rc 1: AssertionError)"}]
    (tmp_path / "train_gpu.json").write_text(json.dumps({"setup": "", "rows": rows}))
    text = tt.summary(tmp_path)
    lines = text.splitlines()
    assert lines[0] == "| part | status | seconds (budget) | key numbers |" and len(lines) == 6
    assert ("| setup | ok | 12 (35) | python 3.11.7; torch 2.11.0 cuda 13.0 device NVIDIA H200; missing modules: none |"
            in lines)
    assert "ddp 123,457 tok/s, MFU 41.2%, 61.2 GB; gemini failed (rc 1: AssertionError)" in lines[3]
    assert lines[4] == ("| train_run | ok | 41 (60) | steps 1-6, resumed from step 2, steps [3, 4] redone: loss within "
                        "3.9e-06 (relative), final model saved, ok |")
    assert lines[5] == "| evaluate | timed out | 40 (40) |  |"
    assert (tmp_path / "summary.md").read_text() == text + "\n"


def test_table_format_is_shared():
    tt = _throughput()
    ok = {"case": "zero2", "nproc": 1, "seq_len": 4096, "status": "ok", "tokens_per_s": 1.5, "mfu": None,
          "peak_memory_gb": 2.0}
    bad = {"case": "gemini", "nproc": 1, "seq_len": 4096, "status": "timed out after 32 s"}
    assert tt.table([ok, bad]).splitlines() == [
        "| case | processes | seq len | tokens/s | MFU | peak mem (GB/rank) |", "|---|---|---|---|---|---|",
        "| zero2 | 1 | 4096 | 1.5 | n/a (no peak) | 2.0 |", "| gemini | 1 | 4096 | timed out after 32 s | - | - |"]
