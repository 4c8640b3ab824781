"""Write an output folder so that it appears complete or not at all."""

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from research import locks
from research.errors import GraftError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale(out: Path, kinds: tuple[str, ...] = ("tmp", "old")) -> list[Path]:
    """Remove the siblings `.<name>.<kind>-<pid>` that runs killed before they could clean up left behind: those
    whose pid is no longer alive (never a live process's, nor this process's own). Returns what was removed."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(?:{'|'.join(map(re.escape, kinds))})-(\d+)")
    removed = []
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            _remove(entry)
            removed.append(entry)
    return removed


def _swap(tmp: Path, out: Path, overwrite: bool) -> Path | None:
    """Move `tmp` to `out`; return where the previous `out` went (to be removed), or None."""
    if not overwrite and (out.exists() or out.is_symlink()):
        raise GraftError(f"out_dir={str(out)!r} exists and overwrite=false")
    if not (out.exists() or out.is_symlink()):
        tmp.rename(out)
        return None
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        old.rename(out)
        raise
    return old


@contextmanager
def atomic_dir(out_dir: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success rename it to `out_dir`, on any error remove it.

    An existing `out_dir` is replaced only after the new one is complete, so an interrupted run leaves the
    previous output (or nothing), never a half-written folder under the final name. Temporary folders that
    killed runs left beside `out_dir` are removed first (see `remove_stale`).

    Safe when called from several processes at once: each writes its own `.<name>.tmp-<pid>`, and the final
    renames (old folder aside, new one in) happen under the folder's lock (`research.locks.hold`, which the app
    running this usually holds already), so two of them never interleave: the last to finish wins and nothing is
    left behind. (Without the lock, one process's rename of its tmp folder onto `out_dir` fails with "Directory
    not empty" when another's landed in between, leaving its tmp and old folders.)
    """
    out = Path(out_dir)
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise GraftError(f"out_dir={str(out)!r} exists and overwrite=false")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists() or tmp.is_symlink():
        _remove(tmp)
    tmp.mkdir()
    old = None
    try:
        yield tmp
        with locks.hold(out, wait=True):
            old = _swap(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:  # outside the lock: the next writer need not wait for a large folder's removal
        _remove(old)
