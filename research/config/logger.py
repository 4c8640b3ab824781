"""Schema of the `logger` group: metrics.jsonl always, Weights & Biases offline by default."""

from dataclasses import dataclass, field

from research.errors import check

WANDB_MODES = ("offline", "online", "disabled")


@dataclass
class LoggerConfig:
    name: str = "wandb_offline"
    wandb_mode: str = "offline"
    """offline (default: nothing leaves the machine) | online | disabled."""
    project: str = "graft"
    entity: str | None = None
    group: str | None = None
    """W&B group: one per sweep."""
    tags: list[str] = field(default_factory=list)
    log_every: int = 1
    """Write metrics every this many optimizer steps."""

    def __post_init__(self):
        check(self.wandb_mode in WANDB_MODES, "logger.wandb_mode", self.wandb_mode, f"must be one of {WANDB_MODES}")
        check(self.log_every > 0, "logger.log_every", self.log_every, "must be positive")
