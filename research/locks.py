"""One writer per output folder: an exclusive flock on `.<name>.lock` beside the folder, the holder's pid inside.

`research.cli.app` holds the lock on the config's `out_dir` for the whole run (`for_run`), so a second run into
the same folder stops at once with one line naming the folder and the pid that holds it. The kernel releases a
flock when its holder dies, however it dies, so a lock is never stale; the file itself is removed on release.
Under torch.distributed.run rank 0 holds it; the other ranks on its node wait until a process of their own job
(a sibling: same parent, the launcher) holds it, and the other nodes' ranks do not lock at all.

The lock is reentrant within a process (`research.atomic.atomic_dir` takes it again around its final rename).
It is a different file from the pipeline's cache lock (`research.orchestrate.cache.locked`), which the pipeline
holds while the stage it launched holds this one.
"""

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from research.errors import GraftError

log = logging.getLogger("graft")
SIBLING_WAIT_S = 600.0
"""How long a rank other than 0 waits for its rank 0 to take the lock (torch.distributed.run stops it sooner if
rank 0 fails)."""
_held: dict[Path, list[int]] = {}  # canonical folder -> [fd, depth]


class FolderLocked(GraftError):
    """Another process holds the folder's lock."""

    def __init__(self, folder: Path, pid: int | None, what: str = "out_dir"):
        self.folder, self.pid = folder, pid
        who = f"pid {pid}" if pid else "a process whose pid is not written yet"
        super().__init__(f"{what}={str(folder)!r} is in use by another run ({who}; lock {lock_file(folder)})")


def canonical(folder: str | os.PathLike) -> Path:
    """The folder's absolute path with links resolved: two spellings of one folder share one lock."""
    return Path(os.path.realpath(os.path.abspath(folder)))


def lock_file(folder: str | os.PathLike) -> Path:
    f = canonical(folder)
    return f.parent / f".{f.name}.lock"


def holder(folder: str | os.PathLike) -> int | None:
    """The pid written in the folder's lock file (None without one). Says who holds it only while it is held."""
    try:
        text = lock_file(folder).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _open_locked(path: Path, wait: bool) -> int | None:
    """An fd holding the flock on `path` (created if missing), or None if another process holds it and not `wait`.

    The previous holder removes the file when it lets go, so the file we locked may be gone from the folder or
    replaced by a newer one: then lock again, on what the path names now."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            st, mine = os.stat(path), os.fstat(fd)
            if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _busy_pid(folder: Path) -> int | None:
    """The holder's pid; it writes it just after locking, so give it a moment."""
    for _ in range(20):
        pid = holder(folder)
        if pid:
            return pid
        time.sleep(0.025)
    return None


@contextmanager
def hold(folder: str | os.PathLike, wait: bool = False, what: str = "out_dir") -> Iterator[Path]:
    """Hold the folder's lock inside the block (reentrant in one process). Busy: FolderLocked, or with `wait`,
    wait for it (logged with the holder's pid). Yields the canonical folder."""
    f = canonical(folder)
    if f in _held:
        _held[f][1] += 1
        try:
            yield f
        finally:
            _held[f][1] -= 1
        return
    path = lock_file(f)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_locked(path, wait=False)
        if fd is None:
            if not wait:
                raise FolderLocked(f, _busy_pid(f), what)
            log.info("waiting for pid %s, which is writing %s", _busy_pid(f) or "?", f)
            fd = _open_locked(path, wait=True)
    except OSError as e:
        raise GraftError(f"{what}={str(f)!r}: cannot lock {path} ({e.strerror or e})") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _held[f] = [fd, 1]
        yield f
    finally:
        _held.pop(f, None)
        try:
            os.unlink(path)  # while still holding it: a waiter finds its file gone and locks the new one
        except OSError:
            pass
        os.close(fd)


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _wait_for_sibling(folder: Path, what: str, timeout: float = SIBLING_WAIT_S) -> None:
    """Block until a process with our parent (rank 0 of this torch.distributed.run job) holds the lock."""
    deadline, parent = time.monotonic() + timeout, os.getppid()
    while True:
        pid = holder(folder)
        if pid and pid != os.getpid() and _parent_of(pid) == parent:
            return
        if time.monotonic() > deadline:
            who = f" (the lock file names pid {pid})" if pid else ""
            raise GraftError(f"{what}={str(folder)!r}: rank 0 of this job did not lock it within {timeout:.0f} s{who}")
        time.sleep(0.05)


@contextmanager
def for_run(out_dir: str | os.PathLike, what: str = "out_dir") -> Iterator[None]:
    """The lock one run of an app holds on its output folder: by its only process, or by rank 0 of a
    torch.distributed.run job (see the module's docstring)."""
    rank, node = os.environ.get("RANK", "0"), os.environ.get("GROUP_RANK", "0")
    if rank == "0":
        with hold(out_dir, what=what):
            yield
    else:
        if node == "0" and os.path.isdir("/proc"):
            _wait_for_sibling(canonical(out_dir), what)
        yield
