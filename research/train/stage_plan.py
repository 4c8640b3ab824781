"""A schedule resolved to steps: where each stage starts, how long it lasts, its learning rate at each step."""

import math
from dataclasses import dataclass

from research.config.schedule import StageConfig


@dataclass
class Stage:
    index: int
    config: StageConfig
    start: int
    """First global optimizer step of the stage."""
    steps: int
    num_packs: int
    """Packs in one pass over the stage's data (after the mix)."""

    @property
    def end(self) -> int:
        return self.start + self.steps


def stage_steps(stage: StageConfig, num_packs: int, global_batch: int, max_length: int) -> int:
    """steps if set, else the token budget in steps (global_batch x max_length tokens each), else one pass."""
    if stage.steps:
        return stage.steps
    if stage.tokens:
        return max(1, math.ceil(stage.tokens / (global_batch * max_length)))
    return max(1, math.ceil(num_packs / global_batch))


class Schedule:
    def __init__(self, stages: list[Stage], peak_lr: float):
        self.stages, self.peak_lr = stages, peak_lr
        self.total_steps = stages[-1].end

    def lookup(self, step: int) -> tuple[Stage, float]:
        """The stage holding global step `step` and the fraction of it done before this step."""
        for s in self.stages:
            if step < s.end:
                return s, (step - s.start) / s.steps
        last = self.stages[-1]
        return last, 1.0

    def lr(self, step: int) -> float:
        """Learning rate for the update made at `step`: linear warm-up, then decay to min_lr_ratio x peak."""
        stage, _ = self.lookup(step)
        c = stage.config
        peak = self.peak_lr * c.lr_scale
        i = step - stage.start
        warm = int(round(c.warmup * stage.steps))
        if i < warm:
            return peak * (i + 1) / warm
        span = max(1, stage.steps - warm - 1)
        t = min(1.0, (i - warm) / span)
        floor = c.min_lr_ratio
        if c.decay == "constant":
            return peak
        if c.decay == "linear":
            return peak * (1.0 - (1.0 - floor) * t)
        return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t)))
