"""Weights & Biases in one place: offline by default, `disabled` never imports wandb. Every app logs through
init_run / log / finish, so a run's metrics live both beside its outputs and in W&B.

Offline means no network attempt at all, not even a DNS lookup: left alone, wandb's SDK probes its server for
telemetry from a background thread (a lookup of the W&B host even in an offline run), and the wandb-core service it
spawns reports errors and samples system metrics. An offline run therefore sets, before wandb is imported and for
the run's lifetime, the environment wandb and wandb-core read (OFFLINE_ENV), passes OFFLINE_SETTINGS, and turns
wandb's OpenTelemetry analytics off for the process. tests/test_offline.py checks it with strace."""

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from research.errors import GraftError

_run = None


def init_run(cfg, raw: DictConfig, job_type: str, dir: str | Path | None = None):
    """Start a W&B run for this app (None when logger.wandb_mode=disabled). Offline runs are stored under
    `dir` (default: run_root) and can be uploaded later with `wandb sync`."""
    global _run
    mode = cfg.logger.wandb_mode
    if mode == "disabled":
        return None
    offline = mode == "offline"
    if offline:
        _set_env(OFFLINE_ENV)
    try:
        import wandb
    except ImportError:
        _restore_env()
        raise GraftError(f"logger.wandb_mode={mode!r} needs the wandb package; install it or use logger=none") from None
    settings = {"silent": True, "console": "off"}
    if offline:
        settings |= OFFLINE_SETTINGS
        _disable_analytics()
    fields = getattr(wandb.Settings, "model_fields", None)
    if fields is not None:  # only the settings this wandb version knows
        settings = {k: v for k, v in settings.items() if k in fields}
    where = Path(dir or cfg.run_root)
    where.mkdir(parents=True, exist_ok=True)
    try:
        _run = wandb.init(
            project=cfg.logger.project, entity=cfg.logger.entity, group=cfg.logger.group, tags=list(cfg.logger.tags),
            job_type=job_type, mode=mode, dir=str(where), config=OmegaConf.to_container(raw, resolve=True),
            settings=wandb.Settings(**settings),
        )
    except BaseException:
        _restore_env()
        raise
    return _run


OFFLINE_ENV = {
    "WANDB_MODE": "offline",  # wandb's process-wide settings (its telemetry probe follows them), not only the run's
    "WANDB_ERROR_REPORTING": "false",  # no error/usage reports; wandb-core is started with --no-observability
    "WANDB_DISABLE_GIT": "true",
    "WANDB_DISABLE_CODE": "true",
    "WANDB__DISABLE_STATS": "true",  # no system-metrics sampler (wandb-symon, which may query cloud metadata)
    "WANDB__DISABLE_META": "true",
    "WANDB__DISABLE_MACHINE_INFO": "true",
}
"""Environment of an offline run (set before wandb is imported, restored by finish()); wandb-core inherits it."""

OFFLINE_SETTINGS = {"mode": "offline", "disable_git": True, "disable_code": True, "save_code": False,
                    "x_disable_stats": True, "x_disable_meta": True, "x_disable_machine_info": True}
"""wandb.Settings of an offline run, besides silent and console="off" (no console capture) that every run has."""

_saved_env: dict[str, str | None] = {}


def _set_env(values: dict[str, str]) -> None:
    for k, v in values.items():
        _saved_env.setdefault(k, os.environ.get(k))
        os.environ[k] = v


def _restore_env() -> None:
    for k, v in _saved_env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    _saved_env.clear()


def _disable_analytics() -> None:
    """wandb's process-wide switch for its OpenTelemetry analytics, where this wandb version has one."""
    try:
        from wandb.analytics.opentelemetry import opentelemetry_proxy
    except ImportError:
        return
    disable = getattr(opentelemetry_proxy, "disable", None)
    if callable(disable):
        disable()


def log(metrics: dict, step: int | None = None) -> None:
    if _run is not None:
        _run.log(metrics, step=step)


def summary(metrics: dict) -> None:
    """Final figures of a run (W&B's run summary, the numbers shown in its tables)."""
    if _run is not None:
        _run.summary.update(metrics)


def finish() -> None:
    global _run
    try:
        if _run is not None:
            _run.finish()
    finally:
        _run = None
        _restore_env()
