"""research/atomic.py: a folder appears complete or not at all, also with two writers at once; killed runs'
temporary folders are removed on the next run, never a live process's."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from research.atomic import atomic_dir
from research.errors import GraftError

ROOT = Path(__file__).resolve().parents[1]

WRITER = """
import os, sys
from research.atomic import atomic_dir
out, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with atomic_dir(out) as tmp:
        (tmp / "part").write_text(f"{os.getpid()} {i}")
        (tmp / "done").write_text(f"{os.getpid()} {i}")
"""


def python(code: str, *args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_two_processes_writing_one_folder_at_once_both_succeed_and_leave_nothing(tmp_path):
    out = tmp_path / "out"
    writers = [python(WRITER, out, 150) for _ in range(2)]
    results = [w.communicate(timeout=120) for w in writers]
    for w, (_, err) in zip(writers, results, strict=True):
        assert w.returncode == 0, err[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    part, done = (out / "part").read_text(), (out / "done").read_text()
    assert part == done and part.split()[1] == "149"  # one writer's complete folder, its last one


def test_a_killed_writers_leftovers_go_on_the_next_run_a_live_writers_stay(tmp_path):
    out = tmp_path / "out"
    killed = python("import sys, time\nfrom research.atomic import atomic_dir\n"
                    "with atomic_dir(sys.argv[1]) as tmp:\n    (tmp / 'half').write_text('x')\n"
                    "    print(tmp, flush=True)\n    time.sleep(60)\n", out)
    left = Path(killed.stdout.readline().strip())
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert left.name == f".out.tmp-{killed.pid}" and (left / "half").is_file()  # what a SIGKILL leaves
    old = tmp_path / f".out.old-{dead_pid()}"
    (old / "x").mkdir(parents=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = tmp_path / f".out.tmp-{live.pid}"
        other = tmp_path / f".other.tmp-{dead_pid()}"
        busy.mkdir()
        other.mkdir()
        with atomic_dir(out) as tmp:
            (tmp / "f").write_text("new")
        assert (out / "f").read_text() == "new"
        assert not left.exists() and not old.exists()
        assert busy.is_dir() and other.is_dir()  # a live process's, and another folder's
    finally:
        live.kill()
        live.wait()


def test_an_error_inside_leaves_nothing_and_the_previous_folder_stays(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("kept")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as tmp:
            (tmp / "new").write_text("half")
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and os.listdir(out) == ["old"]
    with pytest.raises(GraftError, match="exists and overwrite=false"):
        with atomic_dir(out, overwrite=False):
            pass
    with atomic_dir(out) as tmp:
        (tmp / "new").write_text("whole")
    assert os.listdir(out) == ["new"] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_final_rename_waits_for_the_folders_lock(tmp_path):
    """A process holding the folder's lock (an app writing it) holds back another writer's final rename."""
    out = tmp_path / "out"
    holder = python("import sys, time\nfrom research import locks\n"
                    "with locks.hold(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(2)\n", out)
    assert holder.stdout.readline().strip() == "locked"
    t0 = time.monotonic()
    with atomic_dir(out) as tmp:
        (tmp / "f").write_text("after")
    assert time.monotonic() - t0 > 0.5 and holder.wait(timeout=30) == 0
    assert (out / "f").read_text() == "after" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
