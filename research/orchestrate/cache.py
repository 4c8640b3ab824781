"""The stage cache: <cache_dir>/<stage>/<key>/, a lock per key, and the run root's links into it."""

import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from research.atomic import remove_stale
from research.orchestrate.stage_specs import Stage

log = logging.getLogger("graft.pipeline")


def is_complete(folder: Path, stage: Stage) -> bool:
    return all((folder / m).is_file() for m in stage.done_marker)


def build_lock_file(folder: Path) -> Path:
    """`.<key>.build.lock`: not `.<key>.lock`, the lock the stage's own app holds on the folder while it writes it
    (research/locks.py), which it takes while the pipeline holds this one."""
    return folder.parent / f".{folder.name}.build.lock"


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on one cache entry, so two runs (a sweep) never build the same stage at once:
    the second waits, then finds the folder complete and reuses it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(build_lock_file(folder), "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another run that is building %s", folder)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def clear(folder: Path) -> None:
    """Remove a cache entry before a forced rerun (train would otherwise resume from its checkpoints)."""
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)


def link(run_root: Path, name: str, target: Path) -> None:
    """Point run_root/<name> at a cache folder (relative link), so `python -m research.<app> run_root=...` finds
    the pipeline's outputs where `paths` expects them. A real folder already there is left alone."""
    entry = run_root / name
    if entry.exists() and not entry.is_symlink():
        log.warning("%s is a folder, not a link into the cache: left as it is", entry)
        return
    run_root.mkdir(parents=True, exist_ok=True)
    remove_stale(entry, kinds=("link",))  # left by pipelines killed right here
    tmp = run_root / f".{name}.link-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(target, run_root))
    os.replace(tmp, entry)  # atomic: the entry is the old link or the new one, never missing
