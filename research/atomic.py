"""Write an output folder so that it appears complete or not at all."""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from research.errors import GraftError


@contextmanager
def atomic_dir(out_dir: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success rename it to `out_dir`, on any error remove it.

    An existing `out_dir` is replaced only after the new one is complete, so an interrupted run leaves the
    previous output (or nothing), never a half-written folder under the final name.
    """
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise GraftError(f"out_dir={str(out)!r} exists and overwrite=false")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
