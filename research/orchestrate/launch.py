"""Run one stage as a subprocess (`python -m research.<app>`, or under torch.distributed.run), output to a log file.

The stage never outlives the pipeline: it runs in its own process group with SIGTERM as its parent-death signal
(`research.orchestrate.supervision`), and a SIGINT or SIGTERM of the pipeline stops its whole group first.
"""

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from research.errors import GraftError
from research.orchestrate import supervision


def command(app: str, overrides: list[str], nproc: int = 1) -> list[str]:
    """The command line of one stage; more than one process goes through torch.distributed.run on this node."""
    if nproc > 1:
        # --standalone picks a free rendezvous port, so several pipelines can train side by side.
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                    "-m", f"research.{app}"]
    else:
        launcher = [sys.executable, "-m", f"research.{app}"]
    return launcher + list(overrides)


def stage_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"  # the log shows where a stage was when it failed
    return env


def last_error(log: Path) -> str:
    """The line that explains a failure: the app's one-line `error: ...`, else the last line of a traceback."""
    try:
        lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    for ln in reversed(lines):
        if ln.startswith("error: "):
            return ln[len("error: "):]
    # torch.distributed.run ends with its own summary; the child's exception line is the informative one.
    for ln in reversed(lines):
        if "Error: " in ln or "Error:" in ln.split(" ", 1)[0]:
            return ln
    return lines[-1] if lines else "no output"


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(name: str, cmd: list[str], log: Path, cwd: str | None = None) -> float:
    """Run `cmd`, stdout and stderr to `log`; a non-zero exit raises a one-line GraftError naming stage and log.

    Returns the CPU seconds the stage used (all its processes): unlike wall time, it hardly depends on what else
    the machine is running."""
    cpu0 = _children_cpu()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = supervision.start(cmd, stdout=f, stderr=subprocess.STDOUT, env=stage_env(), cwd=cwd)
        try:
            rc = proc.wait()
        except KeyboardInterrupt as e:  # SIGINT, or SIGTERM under supervision.stop_signals_raise
            supervision.stop(proc)
            signum = getattr(e, "signum", signal.SIGINT)
            raise supervision.Interrupted(signum, f"stopped stage {name} (log: {log})") from None
        except BaseException:
            supervision.stop(proc)
            raise
    if rc != 0:
        raise GraftError(f"stage {name} failed (exit status {rc}): {last_error(log)} (log: {log})")
    return _children_cpu() - cpu0
