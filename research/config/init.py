"""Schema of the `init` group: how the new embedding rows are initialised."""

from dataclasses import dataclass

from research.errors import check
from research.init.strategies import STRATEGIES  # light: the strategies import torch only when they run


@dataclass
class InitConfig:
    """Embedding initialisation (`python -m research.init_model`)."""

    strategy: str = "subword_mean"
    """A name in research.init.strategies.STRATEGIES; each has its file conf/init/<name>.yaml."""
    cov_scale: float = 1.0e-9
    """mvn only: the base rows' covariance is scaled by this before sampling (transformers' mean_resizing uses 1e-9)."""
    std_scale: float = 1.0
    """random only: new rows ~ N(0, (std_scale * std of the base rows)^2)."""
    seed: int = 0

    def __post_init__(self):
        check(self.strategy in STRATEGIES, "init.strategy", self.strategy,
              f"unknown strategy; known: {', '.join(STRATEGIES)}")
        check(self.cov_scale > 0, "init.cov_scale", self.cov_scale, "must be positive")
        check(self.std_scale >= 0, "init.std_scale", self.std_scale, "must be >= 0")
