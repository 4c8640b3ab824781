"""Schema of the `plugin` group: the Colossal-AI Booster plugin and its options.

One dataclass holds every plugin's options, all unset (null) by default; `PLUGIN_OPTIONS` lists which options each
plugin takes, so setting one a plugin does not take (say `plugin.tp_size` under `ddp`) is a one-line config error.
Unset options take colossalai's defaults, except where `research.train.plugins` says why it picks another.
"""

from dataclasses import dataclass, fields

from research.errors import check

_ZERO = ("reduce_bucket_size_in_m", "overlap_communication", "cpu_offload")
PLUGIN_OPTIONS = {
    "ddp": ("find_unused_parameters", "broadcast_buffers", "bucket_cap_mb"),
    "zero2": ("stage",) + _ZERO,
    "zero2_cpu": ("stage",) + _ZERO,
    "gemini": ("placement_policy", "offload_optim_frac", "offload_param_frac", "enable_flash_attention"),
    "gemini_auto": ("placement_policy", "enable_flash_attention"),
    "hybrid": ("tp_size", "pp_size", "sp_size", "zero_stage", "sp_mode", "microbatch_size", "num_microbatches",
               "pp_style", "num_model_chunks", "enable_flash_attention", "parallel_output", "make_vocab_size_divisible_by", "cpu_offload",
               "overlap_communication", "find_unused_parameters"),
}
SP_MODES = ("split_gather", "ring", "all_to_all", "ring_attn")
PP_STYLES = ("1f1b", "interleaved")


@dataclass
class PluginConfig:
    name: str = "ddp"
    """ddp | zero2 | zero2_cpu | gemini | gemini_auto | hybrid (a registry key of research.train.plugins)."""
    # ddp (TorchDDPPlugin)
    find_unused_parameters: bool | None = None
    """ddp/hybrid: let DDP skip parameters without a gradient (set automatically when a stage freezes some)."""
    broadcast_buffers: bool | None = None
    bucket_cap_mb: int | None = None
    # zero2 / zero2_cpu (LowLevelZeroPlugin)
    stage: int | None = None
    """ZeRO stage: 1 shards optimizer states, 2 also gradients."""
    reduce_bucket_size_in_m: int | None = None
    """Gradient reduction bucket, in millions of elements."""
    overlap_communication: bool | None = None
    """Overlap gradient reduction with backward (needs CUDA streams; forced off on CPU)."""
    cpu_offload: bool | None = None
    """Keep optimizer states (and the fp32 master weights) in CPU memory."""
    # gemini / gemini_auto (GeminiPlugin)
    placement_policy: str | None = None
    """static | auto: where Gemini keeps parameter chunks."""
    offload_optim_frac: float | None = None
    offload_param_frac: float | None = None
    enable_flash_attention: bool | None = None
    # hybrid (HybridParallelPlugin: tensor, pipeline, sequence parallel + ZeRO)
    tp_size: int | None = None
    pp_size: int | None = None
    sp_size: int | None = None
    zero_stage: int | None = None
    """0, 1 or 2 over the data-parallel group of the hybrid mesh."""
    sp_mode: str | None = None
    """split_gather | ring | all_to_all | ring_attn (sequence parallelism; needs sp_size>1 or tp for split_gather/ring)."""
    microbatch_size: int | None = None
    """Pipeline micro-batch size (pp_size > 1); default train.micro_batch_size. Each step's batch on a
    data-parallel rank (train.micro_batch_size x train.grad_accum packs) is split into micro-batches of this size."""
    num_microbatches: int | None = None
    """Pipeline micro-batches per step (pp_size > 1), instead of microbatch_size."""
    pp_style: str | None = None
    """1f1b | interleaved: the pipeline schedule (pp_size > 1). interleaved needs num_model_chunks > 1."""
    num_model_chunks: int | None = None
    """Model chunks per pipeline stage (interleaved schedule)."""
    parallel_output: bool | None = None
    """Keep logits split over tensor-parallel ranks. The trainer needs full logits (per-token loss), so it defaults to false."""
    make_vocab_size_divisible_by: int | None = None

    def __post_init__(self):
        check(self.name in PLUGIN_OPTIONS, "plugin.name", self.name, f"must be one of {tuple(PLUGIN_OPTIONS)}")
        allowed = PLUGIN_OPTIONS[self.name]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "name" and value is not None:
                check(f.name in allowed, f"plugin.{f.name}", value,
                      f"plugin {self.name!r} does not take this option (it takes: {', '.join(allowed)})")
        for key in ("tp_size", "pp_size", "sp_size", "microbatch_size", "num_microbatches", "bucket_cap_mb",
                    "reduce_bucket_size_in_m", "make_vocab_size_divisible_by", "num_model_chunks"):
            value = getattr(self, key)
            check(value is None or value > 0, f"plugin.{key}", value, "must be positive")
        check(self.stage in (None, 1, 2), "plugin.stage", self.stage, "must be 1 or 2")
        check(self.zero_stage in (None, 0, 1, 2), "plugin.zero_stage", self.zero_stage, "must be 0, 1 or 2")
        check(self.sp_mode in (None,) + SP_MODES, "plugin.sp_mode", self.sp_mode, f"must be one of {SP_MODES}")
        check(self.pp_style in (None,) + PP_STYLES, "plugin.pp_style", self.pp_style, f"must be one of {PP_STYLES}")
        chunks = self.num_model_chunks or 1
        check(self.pp_style != "interleaved" or chunks > 1, "plugin.num_model_chunks", self.num_model_chunks,
              "must be > 1 with pp_style=interleaved")
        check(self.pp_style == "interleaved" or chunks == 1, "plugin.num_model_chunks", self.num_model_chunks,
              "must be 1 unless pp_style=interleaved")
        check(self.placement_policy in (None, "static", "auto"), "plugin.placement_policy", self.placement_policy,
              "must be static or auto")
        for key in ("offload_optim_frac", "offload_param_frac"):
            value = getattr(self, key)
            check(value is None or 0.0 <= value <= 1.0, f"plugin.{key}", value, "must be in [0, 1]")

    def get(self, key: str, default):
        """The option's value, or `default` when it is unset."""
        value = getattr(self, key)
        return default if value is None else value
