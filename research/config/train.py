"""Schema of the `train` node: batch sizes, optimizer, checkpointing, logging (`python -m research.train`)."""

from dataclasses import dataclass, field

from research.errors import check

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    micro_batch_size: int = 1
    """Packs per data-parallel rank per forward/backward."""
    grad_accum: int = 1
    """Micro-batches per optimizer step; global batch = micro_batch_size x grad_accum x data-parallel size."""
    lr: float = 3.0e-4
    """Peak learning rate; each stage scales it (schedule.stages[].lr_scale) and shapes it (warm-up, decay)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW (beta1, beta2)."""
    eps: float = 1.0e-8
    weight_decay: float = 0.1
    """AdamW decoupled weight decay; norms and biases are exempt."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = off)."""
    precision: str = "fp32"
    """fp32 | bf16 | fp16 (mixed precision, handled by the plugin)."""
    doc_mask: bool = True
    """Packed sequences: reset position ids at each document and mask attention across documents."""
    checkpoint_every: int = 100
    """Save a checkpoint every this many optimizer steps (and at the end, and where SIGINT or SIGTERM stops the run);
    0 = only then."""
    keep_last: int = 3
    """Keep this many most recent checkpoints."""
    resume: bool = True
    """Resume from the latest complete checkpoint under out_dir/checkpoints when there is one (it must be this run's:
    only the keys of research.train.checkpoint.RESUMABLE may differ); false = start over."""
    max_steps: int = 0
    """Stop after this many optimizer steps in total (0 = run the whole schedule); for quick runs."""
    log_every: int = 1
    """Write a metrics.jsonl record every this many optimizer steps."""
    benchmark: bool = False
    """Throughput mode: synthetic packed data, no checkpoints; summary.json reports tokens/s and MFU."""
    benchmark_steps: int = 8
    benchmark_warmup: int = 2
    benchmark_seq_len: int = 512
    """Benchmark mode: length of the synthetic packs."""
    """Benchmark mode: steps not timed at the start (allocation, first-call overheads)."""
    peak_flops: float = 0.0
    """Peak FLOP/s of one device for MFU; 0 = look the GPU up in research.train.step_metrics (no MFU on CPU)."""
    num_workers: int = 0
    """DataLoader worker processes per rank (0 = load in the training process)."""
    gradient_checkpointing: bool = False
    seed: int = 1234
    """Seeds the model's dropout RNGs and each bucket's shuffle."""

    def __post_init__(self):
        for key in ("micro_batch_size", "grad_accum", "keep_last", "log_every", "benchmark_steps", "benchmark_seq_len"):
            value = getattr(self, key)
            check(value > 0, f"train.{key}", value, "must be positive")
        for key in ("checkpoint_every", "max_steps", "benchmark_warmup", "num_workers"):
            value = getattr(self, key)
            check(value >= 0, f"train.{key}", value, "must be >= 0")
        check(self.lr > 0, "train.lr", self.lr, "must be positive")
        check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "train.betas", list(self.betas),
              "must be two numbers in [0, 1)")
        check(self.eps > 0, "train.eps", self.eps, "must be positive")
        check(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "must be >= 0")
        check(self.grad_clip >= 0, "train.grad_clip", self.grad_clip, "must be >= 0")
        check(self.precision in PRECISIONS, "train.precision", self.precision, f"must be one of {PRECISIONS}")
        check(self.peak_flops >= 0, "train.peak_flops", self.peak_flops, "must be >= 0")
