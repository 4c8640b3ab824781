"""Weights & Biases in one place: offline by default, `disabled` never imports wandb. Every app logs through
init_run / log / finish, so a run's metrics live both beside its outputs and in W&B."""

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
    try:
        import wandb
    except ImportError:
        raise GraftError(f"logger.wandb_mode={mode!r} needs the wandb package; install it or use logger=none") from None
    where = Path(dir or cfg.run_root)
    where.mkdir(parents=True, exist_ok=True)
    _run = wandb.init(
        project=cfg.logger.project, entity=cfg.logger.entity, group=cfg.logger.group, tags=list(cfg.logger.tags),
        job_type=job_type, mode=mode, dir=str(where), config=OmegaConf.to_container(raw, resolve=True),
        settings=wandb.Settings(silent=True, console="off"),
    )
    return _run


def log(metrics: dict, step: int | None = None) -> None:
    if _run is not None:
        _run.log(metrics, step=step)


def summary(metrics: dict) -> None:
    """Final figures of a run (W&B's run summary, the numbers shown in its tables)."""
    if _run is not None:
        _run.summary.update(metrics)


def finish() -> None:
    global _run
    if _run is not None:
        _run.finish()
        _run = None
