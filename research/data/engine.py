"""Run the stages of research/data/stages.py on datatrove's executors: local processes, Slurm or Ray.

Each stage is one datatrove executor whose pipeline is a single `GraftStep`; a task is one shard, partition,
band or bucket (`rank`), and `data.num_workers` tasks run at once. datatrove records a finished task under
`<work>/logs/<stage>/completions/` and skips it when the same run is started again, which is how a killed run
resumes from its finished shards. A task that fails fails the run with a one-line error naming the stage, the
task (for a shard: its file and first line) and the task's log file.

Slurm: every stage is a job array, each depending on the one before (submitted together); this process waits
for the last one, then finishes the output itself. Ray: the tasks run on the cluster at `data.engine.ray.address`
(empty: a local Ray instance); Ray must be installed (`pip install ray`). The work folder must be on a file system
that every node sees, for both.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from pathlib import Path

from datatrove.pipeline.base import PipelineStep

from research.data import stages as st
from research.errors import GraftError

log = logging.getLogger("graft.data")
SLURM_POLL_S = 30.0


class TaskFailed(GraftError):
    """One task of a stage failed; the message names it (picklable: one string argument)."""


class GraftStep(PipelineStep):
    """The datatrove step of one stage: task `rank` of stage `stage` over the work folder."""

    name = "graft"
    type = "prepare_data"

    def __init__(self, stage: str, work: str, cfg, describe: list[str]):
        super().__init__()
        self.stage, self.work, self.cfg, self.describe = stage, work, cfg, describe

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            st.STAGE_TASKS[self.stage](st.Work(Path(self.work), self.cfg), rank)
        except Exception as e:  # noqa: BLE001 - named and reported as one line by the driver
            where = f"prepare_data: stage {self.stage}, task {rank} ({self.describe[rank]})"
            log_file = Path(self.work) / "logs" / self.stage / "logs" / f"task_{rank:05d}.log"
            first = str(e).splitlines()[0] if str(e) else ""
            raise TaskFailed(f"{where} failed: {type(e).__name__}: {first} (traceback in {log_file})") from None
        return None


class _Discard:
    """A stream that drops what is written (it is never closed, so a logger left holding it stays harmless)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def _quiet_stderr():
    """datatrove's per-task console logging goes to the task's log file only."""
    saved = sys.stderr
    sys.stderr = _Discard()
    try:
        yield
    finally:
        sys.stderr = saved


def quiet_driver_logs() -> None:
    """In this process, datatrove (loguru) prints warnings and errors only, as plain lines."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING", format="{message}")


PRELOAD = ["research.data.stages", "research.data.tokenize", "research.data.score", "research.data.preload",
           "transformers", "sentencepiece", "tokenizers", "datasets"]
"""Imported once by the forkserver that starts every worker process, so a stage's workers start in milliseconds
instead of importing these anew (the forkserver is a clean single-threaded process: safe to fork, unlike this
one, whose threads and tokenizer a plain fork would copy mid-use)."""


def _local_executor():
    import multiprocess
    from datatrove.executor.local import LocalPipelineExecutor

    multiprocess.get_context("forkserver").set_forkserver_preload(PRELOAD)

    class Local(LocalPipelineExecutor):
        def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
            with _quiet_stderr():
                return super()._run_for_rank(rank, local_rank, node_rank)

    return Local


def build_executor(cfg, stage: str, tasks: int, work: Path, describe: list[str], depends=None):
    """The datatrove executor that runs `tasks` tasks of `stage`."""
    e = cfg.data.engine
    pipeline = [GraftStep(stage, str(work), cfg, describe)]
    logging_dir = str(work / "logs" / stage)
    workers = min(cfg.data.num_workers, tasks)
    if e.executor == "local":
        return _local_executor()(pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir)
    if e.executor == "ray":
        try:
            import ray
            from datatrove.executor.ray import RayPipelineExecutor
        except ImportError:
            raise GraftError("data.engine.executor=ray: the ray package is not installed (pip install ray)") from None
        if not ray.is_initialized():
            ray.init(address=e.ray.address or None, log_to_driver=False, include_dashboard=False)
        return RayPipelineExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir,
                                   cpus_per_task=e.ray.cpus_per_task, mem_per_cpu_gb=e.ray.mem_per_cpu_gb)
    from datatrove.executor.slurm import SlurmPipelineExecutor

    s = e.slurm
    return SlurmPipelineExecutor(pipeline, tasks=tasks, time=s.time, partition=s.partition,
                                 cpus_per_task=s.cpus_per_task, mem_per_cpu_gb=s.mem_per_cpu_gb, workers=workers,
                                 job_name=f"graft_{stage}", qos=s.qos or "normal", sbatch_args=dict(s.sbatch_args),
                                 venv_path=s.venv_path or None, logging_dir=logging_dir, depends=depends)


def completed(work: Path, stage: str) -> int:
    folder = work / "logs" / stage / "completions"
    return len(os.listdir(folder)) if folder.is_dir() else 0


@contextlib.contextmanager
def _progress(work: Path, stage: str, tasks: int, enabled: bool):
    """A progress bar over the stage's finished tasks (datatrove's completion markers)."""
    from tqdm import tqdm

    bar = tqdm(total=tasks, desc=f"prepare_data {stage}", unit="task", disable=not enabled, mininterval=0.5,
               initial=completed(work, stage))
    stop = threading.Event()

    def poll():
        while not stop.wait(0.5):
            bar.n = completed(work, stage)
            bar.refresh()

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        bar.n = completed(work, stage)
        bar.close()


def run_stages(cfg, work: Path, plan: list[tuple[str, int, list[str]]], progress: bool = True) -> dict:
    """Run each (stage, tasks, task descriptions) in order; return seconds per stage. Raises GraftError naming the
    failed task."""
    timings = {}
    quiet_driver_logs()
    if cfg.data.engine.executor == "slurm":
        return _run_slurm(cfg, work, plan)
    for stage, tasks, describe in plan:
        t = time.perf_counter()
        done = completed(work, stage)
        if done:
            log.info("prepare_data %s: %d of %d tasks already finished, reused", stage, done, tasks)
        executor = build_executor(cfg, stage, tasks, work, describe)
        quiet_driver_logs()  # after the executor's import, which sets up datatrove's own console logging
        with _progress(work, stage, tasks, progress):
            try:
                executor.run()
            except TaskFailed:
                raise
            except Exception as e:  # noqa: BLE001 - an executor failure that is not a task's own
                raise GraftError(f"prepare_data: stage {stage} failed: {type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else ''} (task logs in {work / 'logs' / stage})"
                                 ) from None
        quiet_driver_logs()  # a stage run in this process (one worker) leaves datatrove's console logger behind
        missing = tasks - completed(work, stage)
        if missing:
            raise GraftError(f"prepare_data: stage {stage}: {missing} of {tasks} tasks did not finish "
                             f"(task logs in {work / 'logs' / stage})")
        timings[stage] = time.perf_counter() - t
    return timings


def _run_slurm(cfg, work: Path, plan) -> dict:
    t = time.perf_counter()
    executors = []
    for stage, tasks, describe in plan:
        executors.append(build_executor(cfg, stage, tasks, work, describe,
                                        depends=executors[-1] if executors else None))
    executors[-1].run()  # submits every stage, each depending on the one before
    job_ids = [str(e.job_id) for e in executors if getattr(e, "job_id", None) not in (None, -1)]
    log.info("prepare_data: submitted Slurm jobs %s; waiting for them", ", ".join(job_ids))
    while any(completed(work, stage) < tasks for stage, tasks, _ in plan):
        time.sleep(SLURM_POLL_S)
        if job_ids and not _slurm_jobs_left(job_ids):  # every job ended and some task never finished
            missing = [f"{stage} ({tasks - completed(work, stage)} of {tasks})" for stage, tasks, _ in plan
                       if completed(work, stage) < tasks]
            raise GraftError(f"prepare_data: the Slurm jobs ended with unfinished tasks: {', '.join(missing)} "
                             f"(task logs in {work / 'logs'}); rerun to resume")
    return {"slurm": time.perf_counter() - t}


def _slurm_jobs_left(job_ids: list[str]) -> bool:
    """Whether any of the jobs is still queued or running (True when squeue cannot tell)."""
    import subprocess

    try:
        out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(job_ids)], capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return True
    if out.returncode != 0:  # squeue refuses ids it no longer knows: those jobs have ended
        return "invalid job id" not in out.stderr.lower()
    return bool(out.stdout.strip())
