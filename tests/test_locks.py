"""research/locks.py through research.cli.app: one run per output folder, with real processes and real signals.

A second run into a folder in use stops at once with one line naming the folder and the holder's pid; a killed
holder leaves no stale lock; under torch.distributed.run rank 0 alone holds it and the other ranks wait for it,
and when torchrun itself is SIGKILLed its workers die too (research/cli.py sets their parent-death signal).
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from research import locks
from tests.conftest import assert_one_line_error, wait_for

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# A stand-in app: research.cli.app around a body that records who it is, then sleeps. Any primary config will do.
STANDIN = '''
import json, os, time
from pathlib import Path
from research import locks
from research.cli import app

@app("demo_inputs")
def main(cfg, raw):
    rank = os.environ.get("RANK", "0")
    info = {"pid": os.getpid(), "ppid": os.getppid(), "holder": locks.holder(cfg.out_dir)}
    (Path(cfg.run_root) / f"rank{rank}.json").write_text(json.dumps(info))
    time.sleep(float(os.environ.get("STANDIN_SLEEP", "0")))

if __name__ == "__main__":
    main()
'''


def holder_process(folder: Path) -> subprocess.Popen:
    """Another process holding the folder's lock until killed."""
    p = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom research import locks\n"
                          "with locks.hold(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(120)\n",
                          str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def torchrun(tmp: Path, run_root: Path, out: Path, sleep: float = 0) -> subprocess.Popen:
    (tmp / "standin_app.py").write_text(STANDIN)
    env = {**os.environ, "PYTHONPATH": f"{tmp}{os.pathsep}{ROOT}", "STANDIN_SLEEP": str(sleep),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "standin_app",
           f"run_root={run_root}", f"out_dir={out}"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for its reaper counts: it runs no more)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_an_app_refuses_a_folder_in_use_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "eval"
    holder = holder_process(out)
    try:
        proc = subprocess.run([sys.executable, "-m", "research.evaluate", f"run_root={tmp_path}", f"out_dir={out}"],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert_one_line_error(proc, f"out_dir='{out}' is in use by another run", f"pid {holder.pid}")
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert locks.lock_file(out).is_file()  # what a SIGKILL leaves: a file, but no lock
    with locks.hold(out):
        assert locks.holder(out) == os.getpid()
        with locks.hold(tmp_path / "." / "eval"):  # reentrant, under any spelling of the folder
            pass
        probe = subprocess.run([sys.executable, "-c", "import sys\nfrom research import locks\n"
                                "with locks.hold(sys.argv[1]): pass\n", str(out)], cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
        assert probe.returncode != 0 and f"pid {os.getpid()}" in probe.stderr
    assert not locks.lock_file(out).exists()  # removed on release


def test_two_torchrun_jobs_into_one_folder(tmp_path):
    """Job A: rank 0 holds the lock, rank 1 waits for it and runs. Job B into the same folder: its rank 0 stops
    with one line naming A's rank 0, torchrun stops its rank 1 (still waiting). Then A's torchrun is SIGKILLed:
    its workers, each in a session of its own, die with it."""
    out, a, b = tmp_path / "out", tmp_path / "a", tmp_path / "b"
    job_a = torchrun(tmp_path, a, out, sleep=120)
    try:
        ranks = [a / "rank0.json", a / "rank1.json"]
        assert wait_for(lambda: all(r.is_file() for r in ranks) or job_a.poll() is not None, 120)
        assert job_a.poll() is None, job_a.communicate()[1][-3000:]
        r0, r1 = (json.loads(r.read_text()) for r in ranks)
        assert r0["holder"] == r1["holder"] == r0["pid"] and r0["ppid"] == r1["ppid"] == job_a.pid

        job_b = torchrun(tmp_path, b, out)
        _, err = job_b.communicate(timeout=180)
        assert job_b.returncode != 0
        lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
        assert lines == [f"error: out_dir='{out}' is in use by another run (pid {r0['pid']}; "
                         f"lock {tmp_path / '.out.lock'})"], err[-3000:]
        assert not list(b.glob("rank*.json"))  # B's rank 1 never got past the lock either

        job_a.send_signal(signal.SIGKILL)
        job_a.wait()
        assert wait_for(lambda: gone(r0["pid"]) and gone(r1["pid"]), 10), "a worker outlived torchrun"
    finally:
        job_a.kill()
        job_a.communicate()
