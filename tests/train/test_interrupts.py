"""Ctrl-C of a 2-process torchrun training run: every rank stops at the same step, the checkpoint of that step is
saved, one line says so, and rerunning the command resumes bit-exactly (research/train/interrupts.py)."""

import json
import os
import signal
import time

import pytest
from train_helpers import DDP_ARGS, launch, start
from train_helpers import metrics as _metrics
from train_helpers import ok as _ok

pytestmark = pytest.mark.slow


def _wait_for_step(out, step: int, proc, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        path = out / "metrics.jsonl"
        if path.exists() and any(json.loads(line)["step"] >= step for line in path.read_text().splitlines()
                                 if line.endswith("}")):
            return
        time.sleep(0.1)
    raise AssertionError(f"no step {step} in {out / 'metrics.jsonl'} after {timeout} s")


def test_sigint_under_torchrun_saves_the_step_and_resumes_bit_exact(run_root, uninterrupted, tmp_path):
    out = tmp_path / "train"
    args = [f"run_root={run_root}", f"out_dir={out}", *DDP_ARGS]
    # Every rank waits after step 3 until a signal has reached it, so that the stop step is known; checkpoints
    # fall on even steps, so the one at step 3 is the interruption's.
    proc = start(args, nproc=2, env={"GRAFT_FAULT": "wait_after_step:3", "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": "180"})
    _wait_for_step(out, 3, proc)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: torchrun's process group (its workers have their own)
    _, stderr = proc.communicate(timeout=240)
    stopped = out / "checkpoints" / "step_00000003"
    lines = [line for line in stderr.splitlines() if "interrupted at step" in line]
    assert lines == [f"interrupted at step 3: checkpoint saved to {stopped}; rerun the same command to resume"], \
        stderr[-3000:]
    # No traceback from the workers (torchrun reports the signal it got in its own words).
    assert "KeyboardInterrupt" not in stderr and "research/train" not in stderr, stderr[-3000:]
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_00000002", "step_00000003"]
    assert json.loads((stopped / "state.json").read_text())["step"] == 3
    assert not (out / "summary.json").exists() and not (out / "final").exists()
    assert [r["step"] for r in _metrics(out)] == [1, 2, 3]

    _ok(launch(args, nproc=2))  # the same command: resumes from step 3
    a, b = _metrics(uninterrupted), _metrics(out)
    assert [r["step"] for r in b] == list(range(1, 9))
    for ra, rb in zip(a, b, strict=True):
        assert (ra["loss"], ra["grad_norm"], ra["lr"], ra["stage"], ra["bucket"], ra["tokens_seen"]) == \
               (rb["loss"], rb["grad_norm"], rb["lr"], rb["stage"], rb["bucket"], rb["tokens_seen"])


def test_sigkill_of_every_process_at_once_resumes_from_the_last_checkpoint_bit_exact(run_root, uninterrupted,
                                                                                     tmp_path):
    """kill -9 of torchrun and all its ranks together (a node lost): no handler runs, nothing is saved at the
    kill; the rerun resumes from the last complete checkpoint and ends with the uninterrupted run's losses."""
    import psutil

    out = tmp_path / "train"
    args = [f"run_root={run_root}", f"out_dir={out}", *DDP_ARGS]
    proc = start(args, nproc=2, env={"GRAFT_FAULT": "wait_after_step:3"})
    _wait_for_step(out, 3, proc)
    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    assert len(family) >= 3  # torchrun and its two ranks
    for p in family:
        p.kill()
    proc.communicate(timeout=60)
    psutil.wait_procs(family, timeout=30)
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_00000002"]
    assert not (out / "final").exists()

    _ok(launch(args, nproc=2))  # resumes from step 2; step 3's metrics row is written again
    a, b = _metrics(uninterrupted), _metrics(out)
    assert [r["step"] for r in b] == list(range(1, 9))
    for ra, rb in zip(a, b, strict=True):
        assert (ra["loss"], ra["grad_norm"], ra["lr"], ra["tokens_seen"]) == \
               (rb["loss"], rb["grad_norm"], rb["lr"], rb["tokens_seen"])
