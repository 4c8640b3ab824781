"""Schema of the `init` group: how the new embedding rows are initialised."""

from dataclasses import dataclass

from research.errors import check

# Kept in step with research.init.strategies.STRATEGIES (a test checks they agree); listed here so a
# bad name fails when the config is composed, before torch or a model is loaded.
STRATEGY_NAMES = ("subword_mean", "subword_mean_in", "subword_mean_ref", "mean_all", "mvn", "random", "zero")


@dataclass
class InitConfig:
    """Embedding initialisation (`python -m research.init_model`)."""

    strategy: str = "subword_mean"
    """subword_mean | subword_mean_in | subword_mean_ref | mean_all | mvn | random | zero."""
    cov_scale: float = 1.0e-9
    """mvn only: the base rows' covariance is scaled by this before sampling (transformers' mean_resizing uses 1e-9)."""
    std_scale: float = 1.0
    """random only: new rows ~ N(0, (std_scale * std of the base rows)^2)."""
    seed: int = 0

    def __post_init__(self):
        check(self.strategy in STRATEGY_NAMES, "init.strategy", self.strategy, f"must be one of {STRATEGY_NAMES}")
        check(self.cov_scale > 0, "init.cov_scale", self.cov_scale, "must be positive")
        check(self.std_scale >= 0, "init.std_scale", self.std_scale, "must be >= 0")
