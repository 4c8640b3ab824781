"""Schema of the `plugin` group: one dataclass per Colossal-AI Booster plugin choice, holding only its options.

`PLUGINS` (name -> dataclass) is the one list of plugin names. Each dataclass is stored in Hydra's ConfigStore as
`schema/plugin/<name>`, and `conf/plugin/<name>.yaml` lists it first in its defaults, so composing `plugin=<name>`
types the node with that dataclass: an option the plugin does not take (say `plugin.tp_size` under `ddp`) fails
when the config is composed, naming the key. `research.train.plugins` builds the Booster plugin from the dataclass.
"""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from research.errors import check

SCHEMA_GROUP = "schema/plugin"
SP_MODES = ("split_gather", "ring", "all_to_all", "ring_attn")
PP_STYLES = ("1f1b", "interleaved")


def _positive(p, *keys: str) -> None:
    for key in keys:
        value = getattr(p, key)
        check(value is None or value > 0, f"plugin.{key}", value, "must be positive")


@dataclass
class PluginConfig:
    """The type of `GraftConfig.plugin`; each plugin choice extends it with its own options."""

    name: str = MISSING
    """A key of PLUGINS, chosen with `plugin=<name>` (the name of its YAML file in conf/plugin/)."""

    def __post_init__(self):
        own = getattr(type(self), "name", MISSING)
        if own is not MISSING:  # a choice's name is fixed: another plugin is another choice, not another name
            check(self.name == own, "plugin.name", self.name,
                  f"this is the {own!r} plugin's config; choose another plugin with plugin=<{'|'.join(PLUGINS)}>")

    def mesh(self) -> dict:
        """Tensor, pipeline and sequence parallel sizes: 1 for every plugin but hybrid."""
        return {"tp": 1, "pp": 1, "sp": 1}


@dataclass
class DdpPluginConfig(PluginConfig):
    """torch DistributedDataParallel (TorchDDPPlugin): full replicas, all-reduced gradients."""

    name: str = "ddp"
    find_unused_parameters: bool | None = None
    """Let DDP skip parameters without a gradient; unset: true when a stage freezes some."""
    broadcast_buffers: bool = True
    """Broadcast module buffers from rank 0 at each forward."""
    bucket_cap_mb: int = 25
    """Gradient all-reduce bucket, in MB."""

    def __post_init__(self):
        super().__post_init__()
        _positive(self, "bucket_cap_mb")


@dataclass
class ZeroPluginConfig(PluginConfig):
    """ZeRO (LowLevelZeroPlugin): optimizer states (and gradients at stage 2) sharded over data-parallel ranks."""

    name: str = "zero2"
    stage: int = 2
    """ZeRO stage: 1 shards optimizer states, 2 also gradients."""
    reduce_bucket_size_in_m: int = 12
    """Gradient reduction bucket, in millions of elements."""
    overlap_communication: bool = True
    """Overlap gradient reduction with backward (needs a second CUDA stream; forced off on CPU)."""
    cpu_offload: bool = False
    """Keep optimizer states (and the fp32 master weights) in CPU memory."""

    def __post_init__(self):
        super().__post_init__()
        check(self.stage in (1, 2), "plugin.stage", self.stage, "must be 1 or 2")
        _positive(self, "reduce_bucket_size_in_m")


@dataclass
class ZeroCpuPluginConfig(ZeroPluginConfig):
    """ZeRO with optimizer states offloaded to CPU memory."""

    name: str = "zero2_cpu"
    cpu_offload: bool = True
    """Keep optimizer states (and the fp32 master weights) in CPU memory."""


@dataclass
class GeminiBaseConfig(PluginConfig):
    """Options every Gemini (GeminiPlugin: chunked ZeRO-3) choice takes. GPU only."""

    placement_policy: str = "static"
    """static | auto: where Gemini keeps parameter chunks."""
    enable_flash_attention: bool = False
    """ColoAttention kernels (CUDA only; cannot apply train.doc_mask)."""

    def __post_init__(self):
        super().__post_init__()
        check(self.placement_policy in ("static", "auto"), "plugin.placement_policy", self.placement_policy,
              "must be static or auto")


@dataclass
class GeminiPluginConfig(GeminiBaseConfig):
    """Gemini with static placement: fixed fractions of optimizer states and parameters offloaded to CPU."""

    name: str = "gemini"
    offload_optim_frac: float = 0.0
    """Fraction of optimizer states kept in CPU memory."""
    offload_param_frac: float = 0.0
    """Fraction of parameters kept in CPU memory."""

    def __post_init__(self):
        super().__post_init__()
        for key in ("offload_optim_frac", "offload_param_frac"):
            value = getattr(self, key)
            check(0.0 <= value <= 1.0, f"plugin.{key}", value, "must be in [0, 1]")


@dataclass
class GeminiAutoPluginConfig(GeminiBaseConfig):
    """Gemini with automatic placement: moves chunks between GPU and CPU from memory statistics."""

    name: str = "gemini_auto"
    placement_policy: str = "auto"
    """static | auto: where Gemini keeps parameter chunks."""


@dataclass
class HybridPluginConfig(PluginConfig):
    """3D parallelism (HybridParallelPlugin): tensor x pipeline x sequence parallel, ZeRO over the data-parallel rest."""

    name: str = "hybrid"
    tp_size: int = 1
    """Tensor-parallel size."""
    pp_size: int = 1
    """Pipeline-parallel size (stages)."""
    sp_size: int = 1
    """Sequence-parallel size."""
    zero_stage: int = 0
    """0, 1 or 2 over the data-parallel group of the hybrid mesh."""
    sp_mode: str | None = None
    """split_gather | ring | all_to_all | ring_attn; setting it turns sequence parallelism on (split_gather and
    ring need tp); unset: all_to_all when sp_size > 1, else off."""
    microbatch_size: int | None = None
    """Pipeline micro-batch size (pp_size > 1); unset: train.micro_batch_size. Each step's batch on a
    data-parallel rank (train.micro_batch_size x train.grad_accum packs) is split into micro-batches of this size."""
    num_microbatches: int | None = None
    """Pipeline micro-batches per step (pp_size > 1), instead of microbatch_size."""
    pp_style: str = "1f1b"
    """1f1b | interleaved: the pipeline schedule (pp_size > 1). interleaved needs num_model_chunks > 1."""
    num_model_chunks: int = 1
    """Model chunks per pipeline stage (interleaved schedule)."""
    enable_flash_attention: bool = False
    """ColoAttention kernels (CUDA only; cannot apply train.doc_mask)."""
    parallel_output: bool = False
    """Keep logits split over tensor-parallel ranks. The trainer needs full logits (per-token loss)."""
    make_vocab_size_divisible_by: int | None = None
    """colossalai pads the vocabulary to a multiple of this x tp_size; unset: the largest of 64, 32, ..., 1 that
    needs no padding (colossalai cannot checkpoint padded embeddings)."""
    cpu_offload: bool = False
    """Keep optimizer states in CPU memory (zero_stage > 0)."""
    overlap_communication: bool = True
    """Overlap gradient reduction with backward (needs a second CUDA stream; forced off on CPU)."""
    find_unused_parameters: bool | None = None
    """Let DDP skip parameters without a gradient; unset: true when a stage freezes some."""

    def __post_init__(self):
        super().__post_init__()
        _positive(self, "tp_size", "pp_size", "sp_size", "microbatch_size", "num_microbatches",
                  "make_vocab_size_divisible_by", "num_model_chunks")
        check(self.zero_stage in (0, 1, 2), "plugin.zero_stage", self.zero_stage, "must be 0, 1 or 2")
        check(self.sp_mode in (None, *SP_MODES), "plugin.sp_mode", self.sp_mode, f"must be one of {SP_MODES}")
        check(self.pp_style in PP_STYLES, "plugin.pp_style", self.pp_style, f"must be one of {PP_STYLES}")
        check(self.pp_style != "interleaved" or self.num_model_chunks > 1, "plugin.num_model_chunks",
              self.num_model_chunks, "must be > 1 with pp_style=interleaved")
        check(self.pp_style == "interleaved" or self.num_model_chunks == 1, "plugin.num_model_chunks",
              self.num_model_chunks, "must be 1 unless pp_style=interleaved")

    def mesh(self) -> dict:
        return {"tp": self.tp_size, "pp": self.pp_size, "sp": self.sp_size}


PLUGINS: dict[str, type[PluginConfig]] = {cls.name: cls for cls in (
    DdpPluginConfig, ZeroPluginConfig, ZeroCpuPluginConfig, GeminiPluginConfig, GeminiAutoPluginConfig,
    HybridPluginConfig)}
"""Every plugin choice: `conf/plugin/<name>.yaml` exists for each, and research.train.plugins builds each."""


def register_schemas(store: ConfigStore) -> None:
    """Store each choice's dataclass as `schema/plugin/<name>`, the first default of conf/plugin/<name>.yaml."""
    for name, cls in PLUGINS.items():
        store.store(group=SCHEMA_GROUP, name=name, node=cls)


register_schemas(ConfigStore.instance())
