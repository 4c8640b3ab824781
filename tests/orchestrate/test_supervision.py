"""`python -m research.pipeline` stopped while its train stage runs (the real train app, in benchmark mode on a tiny
model): the stage never outlives the pipeline. kill -9 of the pipeline while the training loop runs: the stage gets
SIGTERM as its parent-death signal, stops at the next step and its process group is gone within seconds, its
folder's lock with it. SIGTERM of the pipeline while the stage runs: the stage's group is stopped before the
pipeline exits with one line and status 143."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from research import locks
from research.config import to_object
from research.orchestrate.run_stages import plan
from tests.conftest import compose

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def overrides(tmp: Path) -> list[str]:
    return [f"run_root={tmp / 'run'}", f"pipeline.cache_dir={tmp / 'cache'}", "pipeline.stages=[train]",
            "pipeline.nproc=1", "pipeline.report=false", "logger=none",
            "train.benchmark=true", "train.benchmark_steps=500", "train.benchmark_seq_len=32",
            "model.hidden_size=16", "model.intermediate_size=32", "model.num_attention_heads=2",
            "model.num_key_value_heads=2", "model.vocab_size=512"]


def start_pipeline(tmp: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "research.pipeline", *overrides(tmp)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stat(pid: int) -> list[str] | None:
    """(state, ppid, pgrp, ...) of a running process, None for one that has exited (or is a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] == "Z" else fields


def group(pgid: int) -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and (s := stat(int(e))) and int(s[2]) == pgid]


def wait_for(cond, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := cond():
            return value
        time.sleep(0.1)
    return cond()


def the_stage(pipeline: subprocess.Popen, tmp: Path, stepping: bool) -> int:
    """The pid of the train stage once it runs; with `stepping`, once its training loop runs (its log shows a
    step)."""
    log = tmp / "run" / "logs" / "train.log"

    def ready():
        if pipeline.poll() is not None:
            return True
        children = [int(e) for e in os.listdir("/proc") if e.isdigit() and (s := stat(int(e)))
                    and int(s[1]) == pipeline.pid]
        if len(children) != 1 or not log.is_file():
            return None
        if stepping and "step/s" not in log.read_text(errors="replace"):
            return None
        return children[0]

    stage = wait_for(ready, 240)
    assert stage and pipeline.poll() is None, pipeline.communicate()[1][-3000:]
    return stage


def test_kill_9_of_the_pipeline_takes_its_train_stage_with_it(tmp_path):
    pipeline = start_pipeline(tmp_path)
    try:
        stage = the_stage(pipeline, tmp_path, stepping=True)
        folder = next(p for p in (tmp_path / "cache" / "train").iterdir() if p.is_dir())
        assert locks.holder(folder) == stage  # the stage holds its own folder's lock
        assert int(stat(stage)[2]) == stage  # the stage leads a process group of its own
        pipeline.send_signal(signal.SIGKILL)
        pipeline.wait()
        assert wait_for(lambda: not group(stage), 30), f"left running: {group(stage)}"
        with locks.hold(folder):  # no one writes it any more: a rerun may
            pass
    finally:
        pipeline.kill()
        pipeline.communicate()


def test_sigterm_of_the_pipeline_stops_its_stage_then_exits_with_one_line(tmp_path):
    pipeline = start_pipeline(tmp_path)
    try:
        stage = the_stage(pipeline, tmp_path, stepping=False)
        pipeline.send_signal(signal.SIGTERM)
        _, err = pipeline.communicate(timeout=120)
        assert not group(stage)  # stopped before the pipeline exited
    finally:
        pipeline.kill()
    assert pipeline.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err
    log = tmp_path / "run" / "logs" / "train.log"
    assert [ln for ln in err.splitlines() if ln.startswith("error: ")] == [
        f"error: interrupted by SIGTERM: stopped stage train (log: {log})"]


def test_a_rerun_waits_for_an_earlier_stage_still_writing_its_folder(tmp_path):
    """The stage of a killed pipeline may still be stopping (saving a checkpoint) when the pipeline is rerun: the
    rerun waits for the folder's lock instead of starting a second writer. A SIGTERM while it waits: one line."""
    raw = compose("pipeline", overrides(tmp_path))
    folder = plan(to_object(raw), raw)["train"]["dir"]
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom research import locks\n"
                               "with locks.hold(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(120)\n",
                               folder], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        pipeline = start_pipeline(tmp_path)
        try:
            waiting = f"waiting for pid {holder.pid}, which is writing {folder}"
            seen = []
            for line in pipeline.stdout:  # the pipeline logs to stdout
                seen.append(line)
                if waiting in line:
                    break
            assert waiting in "".join(seen), "".join(seen)[-3000:]
            time.sleep(0.5)
            assert not [e for e in os.listdir("/proc") if e.isdigit() and (s := stat(int(e)))
                        and int(s[1]) == pipeline.pid]  # no stage started
            pipeline.send_signal(signal.SIGTERM)
            _, err = pipeline.communicate(timeout=60)
        finally:
            pipeline.kill()
        assert pipeline.returncode == 128 + signal.SIGTERM and "Traceback" not in err
        assert [ln for ln in err.splitlines() if ln.startswith("error: ")] == ["error: interrupted by SIGTERM"]
    finally:
        holder.kill()
        holder.wait()


def test_sigusr1_prints_stacks_and_the_run_goes_on():
    """Every app imports research.cli: `kill -USR1` makes a stuck run show where it is, without stopping it."""
    code = ("import os, signal, research.cli\n"
            "def where_am_i():\n    os.kill(os.getpid(), signal.SIGUSR1)\nwhere_am_i()\nprint('still running')")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "still running"
    assert "where_am_i" in r.stderr and "Current thread" in r.stderr
