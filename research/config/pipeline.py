"""Schema of the `pipeline` node: which stages `python -m research.pipeline` runs and where it caches them."""

from dataclasses import dataclass, field

from research.errors import check

STAGE_ORDER = ("demo_inputs", "expand_vocab", "init_model", "prepare_data", "train", "evaluate")


@dataclass
class PipelineConfig:
    stages: list[str] = field(default_factory=lambda: list(STAGE_ORDER))
    """Stages to run, in the recipe's order. Leave out demo_inputs when the inputs are your own files (paths.inputs);
    a stage left out is read from its `paths.*` folder as it is."""
    cache_dir: str = "${run_root}/../cache"
    """Stage outputs live in <cache_dir>/<stage>/<key>/, shared by every run root that uses the same cache."""
    reuse: bool = True
    """Skip a stage whose cache folder for the same key is complete (false = rerun every stage)."""
    rerun: list[str] = field(default_factory=list)
    """Stages to run again even when a complete cache folder exists (it is replaced)."""
    nproc: int = 2
    """Processes for the train stage (torch.distributed.run when > 1)."""
    eval_nproc: int = 1
    """Processes for the evaluate stage (each scores a shard)."""
    report: bool = True
    """Write report/report.md and its plots after the stages."""

    def __post_init__(self):
        check(bool(self.stages), "pipeline.stages", self.stages, "must name at least one stage")
        for key, names in (("pipeline.stages", self.stages), ("pipeline.rerun", self.rerun)):
            for s in names:
                check(s in STAGE_ORDER, key, s, f"unknown stage; known: {', '.join(STAGE_ORDER)}")
        order = [STAGE_ORDER.index(s) for s in self.stages]
        check(order == sorted(set(order)), "pipeline.stages", list(self.stages),
              f"must be distinct and in the recipe's order: {', '.join(STAGE_ORDER)}")
        check(self.nproc > 0, "pipeline.nproc", self.nproc, "must be positive")
        check(self.eval_nproc > 0, "pipeline.eval_nproc", self.eval_nproc, "must be positive")
