"""research/orchestrate/launch.py with real processes and signals: a stage runs in its own process group, dies
with the process that launched it (kill -9 included, through torch.distributed.run too), and a SIGTERM of the
launcher stops the stage's whole group before the launcher exits."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from research.errors import GraftError
from research.orchestrate import launch
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# The launcher as the pipeline uses it: SIGINT/SIGTERM raise, launch.run stops the stage and re-raises.
DRIVER = """
import sys
from pathlib import Path
from research.orchestrate import launch, supervision
with supervision.stop_signals_raise():
    try:
        launch.run("sleepy", sys.argv[2:], Path(sys.argv[1]))
    except supervision.Interrupted as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
"""
# A stage with a child of its own (in its process group, as pool or data loader workers are).
STAGE = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print("pids", os.getpid(), child.pid, os.getpgrp(), flush=True)
time.sleep(120)
"""
STANDIN = """
import os, time
from pathlib import Path
from research.cli import app

@app("demo_inputs")
def main(cfg, raw):
    (Path(cfg.run_root) / f"rank{os.environ['RANK']}.pid").write_text(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    main()
"""


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def group(pgid: int) -> list[int]:
    """The running (not zombie) processes of a process group."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry))
    return out


def start_driver(log: Path, *cmd: str, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(log), *cmd], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stage_pids(log: Path, driver: subprocess.Popen) -> tuple[int, int, int]:
    def line():
        text = log.read_text() if log.is_file() else ""
        return next((ln for ln in text.splitlines() if ln.startswith("pids ")), None)

    assert wait_for(lambda: line() or driver.poll() is not None, 60) and line(), driver.communicate()[1][-2000:]
    stage, child, pgid = map(int, line().split()[1:])
    return stage, child, pgid


def test_sigterm_stops_the_stages_whole_group_before_the_launcher_exits(tmp_path):
    log = tmp_path / "logs" / "sleepy.log"
    driver = start_driver(log, sys.executable, "-c", STAGE)
    try:
        stage, child, pgid = stage_pids(log, driver)
        assert pgid == stage != os.getpgid(driver.pid)  # a process group (and session) of its own
        driver.send_signal(signal.SIGTERM)
        _, err = driver.communicate(timeout=90)
        assert group(pgid) == []  # nothing of the stage's group left when the launcher has exited
    finally:
        driver.kill()
    assert driver.returncode == 128 + signal.SIGTERM
    assert err.strip() == f"error: interrupted by SIGTERM: stopped stage sleepy (log: {log})"
    assert log.read_text().startswith("$ ")


def test_a_sigkilled_launcher_takes_its_stage_with_it(tmp_path):
    log = tmp_path / "sleepy.log"
    driver = start_driver(log, sys.executable, "-c", STAGE)
    try:
        stage, _, _ = stage_pids(log, driver)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        assert wait_for(lambda: not running(stage), 10), "the stage outlived its launcher"
    finally:
        driver.kill()
        driver.communicate()


def test_a_sigkilled_launcher_takes_torchrun_and_its_workers_with_it(tmp_path):
    (tmp_path / "standin_app.py").write_text(STANDIN)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
    cmd = launch.command("x", [f"run_root={tmp_path}", f"out_dir={tmp_path / 'out'}"], nproc=2)
    cmd[cmd.index("research.x")] = "standin_app"
    driver = start_driver(tmp_path / "train.log", *cmd, env=env)
    try:
        pidfiles = [tmp_path / "rank0.pid", tmp_path / "rank1.pid"]
        assert wait_for(lambda: all(p.is_file() for p in pidfiles) or driver.poll() is not None, 120)
        assert driver.poll() is None, (tmp_path / "train.log").read_text()[-3000:]
        workers = [int(p.read_text()) for p in pidfiles]
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        # torchrun gets SIGTERM (its parent-death signal) and stops its workers, each in a session of its own.
        assert wait_for(lambda: not any(running(w) for w in workers), 45), "a worker outlived the launcher"
    finally:
        driver.kill()
        driver.communicate()


def test_a_failing_stage_is_one_line_naming_it_and_its_log(tmp_path):
    log = tmp_path / "bad.log"
    with pytest.raises(GraftError) as e:
        launch.run("bad", [sys.executable, "-c", "import sys; print('error: no such file'); sys.exit(2)"], log)
    assert str(e.value) == f"stage bad failed (exit status 2): no such file (log: {log})"
