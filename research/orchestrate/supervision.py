"""Processes that die with the process that started them, and a clean stop on SIGINT/SIGTERM.

- `die_with_parent()`: the Linux parent-death signal (prctl PR_SET_PDEATHSIG): SIGTERM when the parent exits,
  however it exits (kill -9 included). Set in every stage the pipeline starts (between fork and exec) and, at
  import of `research.cli`, in every process torch.distributed.run starts (its workers are in sessions of their
  own, so only this reaches them when the launcher itself is SIGKILLed).
- `start()`: a child in its own session and process group that gets SIGTERM when this process dies.
- `stop()`: SIGTERM to a child's process group, SIGKILL after a grace period or on a second signal.
- `stop_signals_raise()`: SIGINT and SIGTERM raise `Interrupted` (a KeyboardInterrupt), so `finally` blocks and
  `stop()` run; `research.cli.app` reports it as one line and exits with 128 + the signal's number.
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_GRACE_S = 60.0
"""How long a stopped stage may take to exit after SIGTERM before its group is killed (torch.distributed.run
gives its own workers 30 s)."""
_PR_SET_PDEATHSIG = 1
try:  # loaded before any fork: the child must not dlopen between fork and exec
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `detail` says what was stopped."""

    def __init__(self, signum: int, detail: str = ""):
        self.signum, self.detail = int(signum), detail
        super().__init__(f"interrupted by {signal.Signals(signum).name}" + (f": {detail}" if detail else ""))

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> bool:
    """Ask the kernel to send `sig` to this process when its parent exits. If the parent is already gone (the
    signal would never come), send it now. False where the platform has no parent-death signal."""
    if _prctl is None or _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    ppid = os.getppid()
    if (parent is not None and ppid != parent) or ppid == 1:
        os.kill(os.getpid(), sig)
    return True


def start(cmd: list[str], **popen) -> subprocess.Popen:
    """Popen `cmd` in a session of its own (its own process group: `stop` reaches all of it, and a Ctrl-C in the
    terminal reaches only us, who stop it), with SIGTERM as its parent-death signal.

    The stop signals are blocked while it is spawned, so an interrupt cannot fall between the fork and the
    moment the caller holds the Popen (a child nobody would stop); the child unblocks them before exec."""
    parent = os.getpid()
    main = threading.current_thread() is threading.main_thread()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if main else None

    def in_child():  # between fork and exec: no imports, no locks; the libc entry point was looked up before
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        die_with_parent(signal.SIGTERM, parent)

    try:
        return subprocess.Popen(cmd, start_new_session=True, preexec_fn=in_child, **popen)
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it: while it is an unreaped zombie its pid, and so its
    process group's id, cannot be reused, so signalling the group cannot hit an unrelated process."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _others_in_group(pgid: int) -> bool:
    """Whether a process other than the group's leader is still in the group (data loader or pool workers)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for entry in entries:
        if not entry.isdigit() or int(entry) == pgid:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop(proc: subprocess.Popen, grace: float = STOP_GRACE_S) -> int:
    """Stop a child `start` made, with everything in its process group: SIGTERM, then SIGKILL to whatever is
    left once `grace` seconds have passed or another SIGINT/SIGTERM arrives. Returns its exit status."""
    if proc.returncode is not None:  # already reaped: its group id may belong to someone else by now
        return proc.returncode
    pgid, again = proc.pid, []
    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, lambda *_: again.append(1)) for s in STOP_SIGNALS} if main else {}
    try:
        _killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while (not _exited(pgid) or _others_in_group(pgid)) and not again and time.monotonic() < deadline:
            time.sleep(0.05)
        _killpg(pgid, signal.SIGKILL)
        return proc.wait()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise `Interrupted` in the main thread (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
