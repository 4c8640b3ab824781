"""Find and read the jobs of a multirun folder.

Layout (Hydra's, with the sweeps in `sweeps/`):

    <sweep dir>/multirun.yaml              the sweep's config: hydra.sweeper.params, hydra.overrides.task
    <sweep dir>/<job>/.hydra/overrides.yaml the overrides that define the job
    <sweep dir>/<job>/summary.json          the job's key figures (written last: its presence means success)
    <sweep dir>/<job>/stages.json           where each stage's outputs are

A job folder without summary.json is a failed (or still running) job; a combination multirun.yaml defines
but no folder holds is a missing job (the sweep stopped before it). Neither is an error here: both are
reported in the table.
"""

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from research.errors import GraftError
from research.sweep import params

log = logging.getLogger("graft.collect_sweep")
OK, FAILED, MISSING = "ok", "failed", "missing"
# The last lines of a job's log that explain a failure: the apps' one-line errors, else exceptions.
_ERROR_LINE = re.compile(r"(^error: |Error: |Error$)")


@dataclass
class Job:
    name: str
    """The job's folder name (Hydra's subdir, by default its number)."""
    dir: Path | None
    overrides: list[str]
    status: str = OK
    reason: str = ""
    summary: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)

    @property
    def values(self) -> dict[str, str]:
        return params.as_dict(self.overrides)

    def stage_dir(self, stage: str) -> Path | None:
        """The folder holding a stage's outputs: stages.json's `dir`, else `<job>/<stage>` (the run root's link)."""
        if self.dir is None:
            return None
        candidates = []
        entry = self.stages.get(stage)
        if isinstance(entry, dict) and entry.get("dir"):
            d = Path(entry["dir"])
            candidates += [d] if d.is_absolute() else [self.dir / d, Path.cwd() / d]
        aliases = {"expand_vocab": "tokenizer", "init_model": "model", "prepare_data": "data", "evaluate": "eval",
                   "demo_inputs": "inputs"}
        candidates += [self.dir / stage, self.dir / aliases.get(stage, stage)]
        return next((c for c in candidates if c.is_dir()), None)


@dataclass
class Sweep:
    dir: Path
    jobs: list[Job]
    expected: int | None
    """Jobs multirun.yaml defines (None without multirun.yaml)."""
    swept: list[str]
    """Override keys whose values differ between jobs (the swept axes)."""
    params: dict = field(default_factory=dict)
    """hydra.sweeper.params as written in the sweep's config."""

    @property
    def ok(self) -> list[Job]:
        return [j for j in self.jobs if j.status == OK]


def single_run_marker(folder: Path) -> str | None:
    """What shows that `folder` holds one run, not a sweep of them (a pipeline's run root, one job of a sweep,
    an app's output folder): its own stages.json, summary.json or .hydra/. None when it may be a sweep folder."""
    if (folder / "multirun.yaml").is_file():
        return None
    return next((m for m in ("stages.json", "summary.json", ".hydra") if (folder / m).exists()), None)


def resolve_dir(path: str | Path) -> Path:
    """The sweep folder at `path`; `<parent>/latest` that does not exist means the newest sweep under parent."""
    p = Path(path)
    if p.is_dir():
        marker = single_run_marker(p)
        if marker:
            raise GraftError(f"{p}: one run's folder (it has its own {marker}), not a sweep's: pass the multirun "
                             "folder above its jobs (multirun.yaml, a folder per job), e.g. multirun/init_strategy/"
                             "<date>")
        return p
    if p.name == "latest" and p.parent.is_dir():
        runs = [d for d in p.parent.iterdir() if d.is_dir() and not d.name.startswith(".")
                and not single_run_marker(d) and ((d / "multirun.yaml").is_file() or _job_dirs(d))]
        if runs:
            return max(runs, key=lambda d: ((d / "multirun.yaml").stat().st_mtime
                                            if (d / "multirun.yaml").is_file() else d.stat().st_mtime, d.name))
        raise GraftError(f"{p}: no sweep folder under {p.parent}")
    raise GraftError(f"{p}: not a folder (pass a multirun folder, e.g. multirun/init_strategy/<date>)")


def _job_dirs(sweep_dir: Path) -> list[Path]:
    dirs = [d for d in sweep_dir.iterdir() if d.is_dir() and not d.name.startswith(".")
            and ((d / ".hydra").is_dir() or (d / "summary.json").is_file())]
    # Hydra numbers jobs from 0; "10" sorts after "9".
    return sorted(dirs, key=lambda d: (int(m.group()) if (m := re.match(r"\d+", d.name)) else 1 << 30, d.name))


def _read_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise GraftError(f"{path}: unreadable ({type(e).__name__})") from None


def _read_json(path: Path) -> tuple[dict, str]:
    """(content, "") or ({}, why it could not be used)."""
    if not path.is_file():
        return {}, f"no {path.name}"
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return {}, f"{path.name} unreadable: {str(e).splitlines()[0]}"
    if not isinstance(obj, dict):
        return {}, f"{path.name} is not a JSON object"
    return obj, ""


def _log_error(job_dir: Path) -> str:
    """The last error line of the job's logs (Hydra's `<job>/<app>.log`, the stages' `<job>/logs/*.log`), newest
    log first."""
    logs = [*job_dir.glob("*.log"), *job_dir.glob("logs/*.log")]
    for path in sorted(logs, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in reversed(lines):
            if _ERROR_LINE.search(line.strip()):
                return line.strip()[:300]
    return ""


def read_job(job_dir: Path) -> Job:
    over_file = job_dir / ".hydra" / "overrides.yaml"
    try:
        overrides = _read_yaml(over_file) if over_file.is_file() else []
        if not isinstance(overrides, list):
            raise GraftError(f"{over_file.name}: expected a list of overrides, got {type(overrides).__name__}")
        bad_overrides = ""
    except GraftError as e:
        overrides, bad_overrides = [], str(e)
    job = Job(name=job_dir.name, dir=job_dir, overrides=[str(o) for o in overrides])
    job.summary, why = _read_json(job_dir / "summary.json")
    job.stages, _ = _read_json(job_dir / "stages.json")
    if bad_overrides:  # without its overrides the row cannot say what the job swept
        why = f"{bad_overrides}; {why}" if why else bad_overrides
    if why:
        job.status = FAILED
        done = [name for name, r in job.stages.items() if isinstance(r, dict)]
        if done:
            why += f" (stages done: {', '.join(done)})"
        err = _log_error(job_dir)
        job.reason = f"{why}: {err}" if err else why
    return job


def _multirun_config(sweep_dir: Path) -> tuple[dict, list[str]] | None:
    """(hydra.sweeper.params, hydra.overrides.task) from multirun.yaml, read as plain YAML (no resolution)."""
    f = sweep_dir / "multirun.yaml"
    if not f.is_file():
        return None
    cfg = _read_yaml(f) or {}
    hydra = cfg.get("hydra", {}) if isinstance(cfg, dict) else {}
    sweep_params = (hydra.get("sweeper") or {}).get("params") or {}
    task = (hydra.get("overrides") or {}).get("task") or []
    return {str(k): str(v) for k, v in sweep_params.items()}, [str(o) for o in task]


def load_sweep(path: str | Path) -> Sweep:
    """Every job of the sweep at `path`, with the jobs multirun.yaml defines but no folder holds as missing."""
    sweep_dir = resolve_dir(path)
    jobs = [read_job(d) for d in _job_dirs(sweep_dir)]
    try:
        mr = _multirun_config(sweep_dir)
    except GraftError as e:
        log.warning("%s; listing the job folders only", e)
        mr = None
    expected, sweep_params, defined = None, {}, []
    if mr is not None:
        sweep_params, task = mr
        try:
            defined = params.expand(sweep_params, task)
        except GraftError as e:  # the jobs found are still worth a table
            log.warning("%s: cannot tell which jobs the sweep defines (%s); listing the job folders only",
                        sweep_dir / "multirun.yaml", e)
            defined = []
        expected = len(defined) if defined else None
        found = [sorted(j.overrides) for j in jobs]
        for i, combo in enumerate(defined):
            if sorted(combo) not in found:
                jobs.append(Job(name=f"({i})", dir=None, overrides=combo, status=MISSING,
                                reason="defined by the sweep, no job folder"))
    if not jobs:
        raise GraftError(f"{sweep_dir}: no jobs found (no <job>/.hydra/ or <job>/summary.json folders, "
                         "no multirun.yaml)")
    swept = params.swept_keys([params.as_dict(c) for c in defined] if len(defined) > 1 else
                              [j.values for j in jobs])
    return Sweep(dir=sweep_dir, jobs=jobs, expected=expected, swept=swept, params=sweep_params)
