"""Schema of the `schedule` group: the training stages (embedding warm-up, knowledge injection, replay, ...).

A schedule is data: a list of stages, each naming its data (buckets and a per-category mix), its budget, its
learning-rate shape and which parameters train. `research.train.stage_plan` resolves budgets to steps once the data
and the global batch are known, and looks a step up in the result.
"""

import math
import re
from dataclasses import dataclass, field

from research.errors import ConfigError, check

FREEZE_POLICIES = ("full", "embeddings_only", "new_rows_only")
DECAYS = ("cosine", "linear", "constant")
_BUCKET_SPEC = re.compile(r"^\s*(\d+%?)\s*(?:-\s*(\d+%?))?\s*$")


@dataclass
class StageConfig:
    name: str = "stage"
    buckets: str = "all"
    """Which buckets, consumed in this order: `all`, indices and ranges (`0-5,7`, end inclusive) or percent ranges of
    the bucket count (`0%-70%`, end exclusive, edges rounded up), so a schedule works for any bucket count."""
    mix: dict[str, float] = field(default_factory=dict)
    """Per-category sampling rate over the packs of the chosen buckets (a pack's category is its majority one by
    tokens): 0.3 keeps a seeded 30% of that category's packs, 2.0 takes each twice, 0 drops it."""
    mix_default: float = 1.0
    """Rate of the categories not named in `mix`."""
    steps: int = 0
    """Optimizer steps in this stage; 0 = use `tokens`, and if that is 0 too, one pass over the stage's data."""
    tokens: int = 0
    """Token budget (counted as global batch x max_length per step), used when `steps` is 0."""
    lr_scale: float = 1.0
    """Peak learning rate of the stage = train.lr x lr_scale."""
    warmup: float = 0.0
    """Linear warm-up over this fraction of the stage's steps (from 0 to the peak)."""
    decay: str = "cosine"
    """cosine | linear | constant: from the peak to min_lr_ratio x peak at the stage's end."""
    min_lr_ratio: float = 0.1
    freeze: str = "full"
    """full: every parameter trains; embeddings_only: only input embeddings and lm_head train (aligns new rows);
    new_rows_only: only the new tokens' rows of those two train, the base rows stay bit-identical with no weight
    decay and no optimizer state (research/train/new_rows.py; ddp and zero2 plugins, an init_model folder)."""

    def __post_init__(self):
        key = f"schedule.stages[{self.name}]"
        parse_buckets(self.buckets, 1000, key=f"{key}.buckets")
        check(self.steps >= 0, f"{key}.steps", self.steps, "must be >= 0")
        check(self.tokens >= 0, f"{key}.tokens", self.tokens, "must be >= 0")
        check(self.lr_scale > 0, f"{key}.lr_scale", self.lr_scale, "must be positive")
        check(0.0 <= self.warmup < 1.0, f"{key}.warmup", self.warmup, "must be in [0, 1)")
        check(self.decay in DECAYS, f"{key}.decay", self.decay, f"must be one of {DECAYS}")
        check(0.0 <= self.min_lr_ratio <= 1.0, f"{key}.min_lr_ratio", self.min_lr_ratio, "must be in [0, 1]")
        check(self.freeze in FREEZE_POLICIES, f"{key}.freeze", self.freeze, f"must be one of {FREEZE_POLICIES}")
        check(self.mix_default >= 0, f"{key}.mix_default", self.mix_default, "must be >= 0")
        for cat, rate in self.mix.items():
            check(rate >= 0, f"{key}.mix.{cat}", rate, "must be >= 0")


@dataclass
class ScheduleConfig:
    name: str = "colossal_3stage"
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig(name="all")])

    def __post_init__(self):
        if not self.stages:
            raise ConfigError("schedule.stages", self.stages, "needs at least one stage")
        names = [s.name for s in self.stages]
        check(len(set(names)) == len(names), "schedule.stages", names, "stage names must be distinct")


def parse_buckets(spec: str, num_buckets: int, key: str = "buckets") -> list[int]:
    """Bucket indices named by `spec` (see StageConfig.buckets), in order, each in [0, num_buckets)."""
    if spec.strip() == "all":
        return list(range(num_buckets))
    out: list[int] = []
    for part in spec.split(","):
        m = _BUCKET_SPEC.match(part)
        if not m:
            raise ConfigError(key, spec, "must be `all`, indices/ranges like `0-5,7`, or percents like `0%-70%`")
        lo, hi = m.group(1), m.group(2) or m.group(1)
        if lo.endswith("%") != hi.endswith("%"):
            raise ConfigError(key, spec, "a range mixes a percent and an index")
        if lo.endswith("%"):
            a, b = float(lo[:-1]), float(hi[:-1])
            check(0 <= a <= b <= 100, key, spec, "percents must satisfy 0 <= start <= end <= 100")
            # Boundaries round up, so adjacent percent ranges never overlap and a non-empty first range keeps a bucket.
            edge = lambda pct: math.ceil(pct * num_buckets / 100 - 1e-9)  # noqa: E731
            out.extend(range(edge(a), edge(b)))
        else:
            a, b = int(lo), int(hi)
            check(a <= b, key, spec, "a range's start must not exceed its end")
            check(b < num_buckets, key, spec, f"bucket {b} does not exist (there are {num_buckets})")
            out.extend(range(a, b + 1))
    return out
