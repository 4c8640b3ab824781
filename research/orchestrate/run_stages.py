"""Run the recipe's stages in order from one config, reusing finished stages from the cache."""

import json
import logging
import os
import re
import time
from pathlib import Path

from omegaconf import DictConfig

from research import locks
from research.config.pipeline import STAGE_ORDER
from research.config.root import GraftConfig
from research.errors import GraftError
from research.orchestrate import cache, launch
from research.orchestrate.keys import digest, external_dir, material, path_overrides
from research.orchestrate.stage_specs import STAGES
from research.runinfo import write_json

log = logging.getLogger("graft.pipeline")
_PLAIN = re.compile(r"^[\w/.\-@:+]+$")


def quote(value: str) -> str:
    """A value as Hydra's override grammar reads it back unchanged (paths with spaces, commas, brackets)."""
    if _PLAIN.match(value):
        return value
    # Hydra's quoted strings: a backslash escapes only a quote or another backslash run that ends at a quote.
    body = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return "'" + body + "'"


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def plan(cfg: GraftConfig, raw: DictConfig) -> dict[str, dict]:
    """Key and folder of every stage: cache folders for the stages that run, `paths` for the others."""
    pc = cfg.pipeline
    cache_dir = Path(os.path.normpath(Path(pc.cache_dir).absolute()))
    running, keys, out = list(pc.stages), {}, {}
    for name in STAGE_ORDER:
        stage = STAGES[name]
        if name not in running:
            out[name] = {"dir": external_dir(raw, stage), "key": None, "material": None}
            continue
        m = material(raw, stage, running, keys, {"nproc": pc.nproc} if name == "train" else {})
        keys[name] = digest(m)
        out[name] = {"dir": str(cache_dir / name / keys[name]), "key": keys[name], "material": m}
    return out


def stage_command(name: str, cfg: GraftConfig, overrides: list[str], dirs: dict[str, str]) -> list[str]:
    """The command that runs one stage: the pipeline's own overrides, then the folders the pipeline chose."""
    ours = path_overrides(STAGES[name], dirs, list(cfg.pipeline.stages))
    kept = [o for o in overrides if override_key(o) not in ours]
    nproc = {"train": cfg.pipeline.nproc, "evaluate": cfg.pipeline.eval_nproc}.get(name, 1)
    return launch.command(name, kept + [f"{k}={quote(v)}" for k, v in ours.items()], nproc)


def run_pipeline(cfg: GraftConfig, raw: DictConfig, overrides: list[str]) -> dict[str, dict]:
    """Run or reuse every stage of `pipeline.stages`; write run_root/stages.json; return its content."""
    pc = cfg.pipeline
    run_root = Path(cfg.run_root).absolute()
    run_root.mkdir(parents=True, exist_ok=True)
    planned = plan(cfg, raw)
    dirs = {name: p["dir"] for name, p in planned.items()}
    records: dict[str, dict] = {}
    for name in pc.stages:
        stage, folder, key = STAGES[name], Path(dirs[name]), planned[name]["key"]
        t0 = time.perf_counter()
        with cache.locked(folder):
            reused = pc.reuse and name not in pc.rerun and cache.is_complete(folder, stage)
            if reused:
                log.info("%s: reused %s", name, folder)
            else:
                # A stage that an earlier pipeline started may still be exiting (it got SIGTERM when that pipeline
                # died): wait for it to let go of its folder rather than fail on the folder's lock.
                with locks.hold(folder, wait=True):
                    pass
                if not pc.reuse or name in pc.rerun:
                    cache.clear(folder)
                logfile = run_root / "logs" / f"{name}.log"
                log.info("%s: running (key %s; log %s)", name, key, logfile)
                cpu = launch.run(name, stage_command(name, cfg, overrides, dirs), logfile)
                if not cache.is_complete(folder, stage):
                    raise GraftError(f"stage {name} exited without error but {folder} lacks "
                                     f"{', '.join(stage.done_marker)} (log: {logfile})")
                # Beside the folder, not in it: stage folders hold exactly what their app wrote.
                write_json(key_file(folder), {"key": key, "seconds": round(time.perf_counter() - t0, 3),
                                               "cpu_seconds": round(cpu, 3), "overrides": list(overrides),
                                               "material": planned[name]["material"]})
        seconds = time.perf_counter() - t0
        built = _read(key_file(folder))
        records[name] = {"dir": str(folder), "key": key, "reused": reused, "seconds": round(seconds, 3),
                         "built_seconds": built.get("seconds"), "built_cpu_seconds": built.get("cpu_seconds")}
        cache.link(run_root, stage.path_key, folder)
        write_json(run_root / "stages.json", records)  # after every stage: a failed run shows how far it got
        log.info("%s: %s in %.1f s", name, "reused" if reused else "done", seconds)
    return records


def key_file(folder: Path) -> Path:
    """<cache>/<stage>/<key>.json: what the key hashes, the overrides and the time it took to build."""
    return folder.parent / f"{folder.name}.json"


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
