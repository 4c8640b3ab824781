"""Colossal-AI Booster plugins, one builder per plugin config dataclass (research.config.plugin.PLUGINS).

Add a plugin: a dataclass in PLUGINS, its YAML file conf/plugin/<name>.yaml, and a builder here registered for
the dataclass. The builders read options from the dataclass, whose fields hold the defaults; an option left unset
(None) is decided here, from the run.
"""

from functools import singledispatch

import torch

from research.config.plugin import (
    DdpPluginConfig,
    GeminiBaseConfig,
    GeminiPluginConfig,
    HybridPluginConfig,
    PluginConfig,
    ZeroPluginConfig,
)
from research.config.train import TrainConfig
from research.errors import GraftError
from research.model.families import FAMILIES, architecture, family_of


@singledispatch
def build_plugin(p: PluginConfig, t: TrainConfig, needs_unused: bool, model_config=None):
    """The Booster plugin for config `p`; `needs_unused`: some stage freezes parameters (they get no gradient);
    `model_config`: the model's transformers config (hybrid picks a shardformer policy by it)."""
    raise GraftError(f"plugin={p.name!r}: no builder for {type(p).__name__} in research.train.plugins")


@build_plugin.register
def _ddp(p: DdpPluginConfig, t: TrainConfig, needs_unused: bool, model_config=None):
    from colossalai.booster.plugin import TorchDDPPlugin

    unused = needs_unused if p.find_unused_parameters is None else p.find_unused_parameters
    return TorchDDPPlugin(find_unused_parameters=unused, broadcast_buffers=p.broadcast_buffers,
                          bucket_cap_mb=p.bucket_cap_mb)


@build_plugin.register
def _zero(p: ZeroPluginConfig, t: TrainConfig, needs_unused: bool, model_config=None):
    from colossalai.booster.plugin import LowLevelZeroPlugin

    # Overlapping reductions needs a second CUDA stream; on CPU there is one stream, so it is off there.
    overlap = p.overlap_communication and torch.cuda.is_available()
    return LowLevelZeroPlugin(stage=p.stage, precision=t.precision, max_norm=t.grad_clip,
                              reduce_bucket_size_in_m=p.reduce_bucket_size_in_m,
                              overlap_communication=overlap, cpu_offload=p.cpu_offload)


def _gemini_needs_cuda(p: PluginConfig) -> None:
    if isinstance(p, GeminiBaseConfig) and not torch.cuda.is_available():
        raise GraftError(f"plugin={p.name}: Gemini needs a CUDA GPU (its chunk manager and HybridAdam are GPU-only); "
                         "use plugin=ddp, zero2 or hybrid on CPU")


@build_plugin.register
def _gemini(p: GeminiBaseConfig, t: TrainConfig, needs_unused: bool, model_config=None):
    _gemini_needs_cuda(p)
    from colossalai.booster.plugin import GeminiPlugin

    kw = {}
    if isinstance(p, GeminiPluginConfig):
        kw = {"offload_optim_frac": p.offload_optim_frac, "offload_param_frac": p.offload_param_frac}
    return GeminiPlugin(placement_policy=p.placement_policy, precision=t.precision, max_norm=t.grad_clip,
                        enable_flash_attention=p.enable_flash_attention, **kw)


@build_plugin.register
def _hybrid(p: HybridPluginConfig, t: TrainConfig, needs_unused: bool, model_config=None):
    from colossalai.booster.plugin import HybridParallelPlugin

    from research.train.shard_policies import custom_policy

    kw = {"custom_policy": custom_policy(model_config, p.tp_size)} if model_config is not None else {}
    if p.sp_size > 1 or p.sp_mode is not None:
        kw.update(enable_sequence_parallelism=True, sequence_parallelism_mode=p.sp_mode or "all_to_all")
    if p.pp_size > 1:
        # One step's batch per data-parallel rank (micro_batch_size x grad_accum packs) goes through the pipeline
        # as its micro-batches; by default the same micro-batches a non-pipelined run accumulates.
        if p.num_microbatches is not None:
            kw["num_microbatches"] = p.num_microbatches
        else:
            kw["microbatch_size"] = p.microbatch_size or t.micro_batch_size
        kw.update(pp_style=p.pp_style, num_model_chunks=p.num_model_chunks,
                  # Overlapped p2p posts sends and receives of neighbouring chunks together; over gloo the
                  # interleaved schedule then waits forever on the first exchange. On CPU, communicate in turn.
                  overlap_p2p=torch.cuda.is_available())
    return HybridParallelPlugin(
        tp_size=p.tp_size, pp_size=p.pp_size, sp_size=p.sp_size, zero_stage=p.zero_stage,
        precision=t.precision, max_norm=t.grad_clip, enable_flash_attention=p.enable_flash_attention,
        # The trainer computes per-token (and per-category) losses, which needs the full logits on every rank.
        parallel_output=p.parallel_output,
        make_vocab_size_divisible_by=64 if p.make_vocab_size_divisible_by is None else p.make_vocab_size_divisible_by,
        cpu_offload=p.cpu_offload,
        overlap_communication=p.overlap_communication and torch.cuda.is_available(),
        find_unused_parameters=needs_unused if p.find_unused_parameters is None else p.find_unused_parameters, **kw)


def pipeline_microbatches(p: HybridPluginConfig, t: TrainConfig) -> tuple:
    """(micro-batch size, number of micro-batches) of one pipelined step on one data-parallel rank."""
    rows = t.micro_batch_size * t.grad_accum
    if p.num_microbatches is not None:
        if rows % p.num_microbatches:
            raise GraftError(f"plugin.num_microbatches={p.num_microbatches} must divide the {rows} packs of a step "
                             f"on one data-parallel rank (train.micro_batch_size x train.grad_accum)")
        return rows // p.num_microbatches, p.num_microbatches
    size = p.microbatch_size or t.micro_batch_size
    if rows % size:
        raise GraftError(f"plugin.microbatch_size={size} must divide the {rows} packs of a step on one "
                         "data-parallel rank (train.micro_batch_size x train.grad_accum)")
    return size, rows // size


def check_attention(p: PluginConfig, t: TrainConfig) -> None:
    """Flash attention under a plugin (gemini, hybrid): refused where it would fail late or drop the document mask."""
    if not (isinstance(p, (GeminiBaseConfig, HybridPluginConfig)) and p.enable_flash_attention):
        return
    if t.doc_mask:
        # ColoAttention reads attention_mask as a [batch, seq] padding mask; the per-document [batch, 1, seq, seq]
        # mask would be misread, not applied.
        raise GraftError("plugin.enable_flash_attention=true cannot apply train.doc_mask=true (ColoAttention takes "
                         "a padding mask only, not the per-document mask of packed sequences); set one of them to false")
    if not torch.cuda.is_available():
        raise GraftError(f"plugin.enable_flash_attention=true (plugin={p.name}) needs a CUDA GPU for ColoAttention's "
                         "kernels; set it to false on CPU")


def check_pipeline(p: PluginConfig, t: TrainConfig, num_layers: int) -> None:
    """Pipeline-parallel config errors (hybrid with pp_size > 1), raised before any plugin is built."""
    pp = p.mesh()["pp"]
    if pp == 1:
        return
    stages = pp * p.num_model_chunks
    if num_layers < stages:
        raise GraftError(f"plugin.pp_size={pp} x num_model_chunks={p.num_model_chunks} exceeds the "
                         f"model's {num_layers} decoder layers")
    size, count = pipeline_microbatches(p, t)
    if count < pp:
        raise GraftError(f"a step makes {count} pipeline micro-batch(es) of {size} pack(s), but plugin.pp_size={pp} "
                         f"needs at least {pp} (raise train.grad_accum to {-(-pp * size // t.micro_batch_size)} or more)")
    if p.pp_style == "interleaved" and count % pp:
        raise GraftError(f"pp_style=interleaved needs the number of micro-batches ({count}) to be a multiple of "
                         f"plugin.pp_size={pp}")


def vocab_multiple(p: HybridPluginConfig, vocab_size: int) -> int:
    """hybrid's make_vocab_size_divisible_by: as configured, else the largest of 64, 32, ..., 1 that, times
    tp_size, divides the vocabulary (no padding: colossalai cannot checkpoint padded embeddings)."""
    if p.make_vocab_size_divisible_by is not None:
        return p.make_vocab_size_divisible_by
    return next((m for m in (64, 32, 16, 8, 4, 2) if vocab_size % (m * p.tp_size) == 0), 1)


def check_plugin(p: PluginConfig, world_size: int, vocab_size: int, fused_ce: bool) -> None:
    """Config errors that need the world size or the model; raised before any plugin is built."""
    _gemini_needs_cuda(p)
    if not isinstance(p, HybridPluginConfig):
        return
    tp, pp, sp = p.tp_size, p.pp_size, p.sp_size
    if world_size % (tp * pp * sp):
        raise GraftError(f"plugin.tp_size={tp} x pp_size={pp} x sp_size={sp} must divide the world size {world_size}")
    mult = vocab_multiple(p, vocab_size) * tp
    if vocab_size % mult:
        # colossalai pads embed_tokens / lm_head to that multiple, and its optimizer checkpoint then fails on the
        # padded weights (AttributeError in padded_tensor) after training, at the first save.
        raise GraftError(f"model vocab_size={vocab_size} must be a multiple of {mult} (plugin."
                         f"make_vocab_size_divisible_by={mult // tp} x tp_size={tp}): colossalai cannot checkpoint a "
                         f"padded vocabulary; expand with tokenizer.pad_to_multiple_of={mult}"
                         + (", or leave make_vocab_size_divisible_by unset to pick one that needs no padding"
                            if p.make_vocab_size_divisible_by is not None else ""))
    if tp > 1 and fused_ce:
        raise GraftError("model.fused_ce=true with plugin.tp_size>1: the fused loss needs the whole lm_head "
                         "(use ddp or zero2, or fused_ce=false)")


def causal_lm_class(config) -> str | None:
    """The full name (module.Class) of the class AutoModelForCausalLM builds for `config`, as colossalai's
    shardformer keys its policies; None when transformers has no causal LM for its model_type."""
    from transformers.models.auto.configuration_auto import model_type_to_module_name
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(getattr(config, "model_type", None))
    if name is None:
        return None
    module = model_type_to_module_name(config.model_type)
    return f"transformers.models.{module}.modeling_{module}.{name}"


def check_architecture(p: PluginConfig, config, where: str) -> None:
    """The model's architecture against the plugin and Graft, from its config alone (before any process group):
    hybrid needs a shardformer policy for its class; training needs a known family (research.model.families);
    the parts of hybrid that colossalai 0.5.0 gets wrong for a family are refused (docs/models.md)."""
    arch = architecture(config)
    if isinstance(p, HybridPluginConfig):
        from colossalai.shardformer.policies.auto_policy import _POLICY_LIST

        full = causal_lm_class(config)
        if full is None or full not in _POLICY_LIST:
            known = getattr(config, "model_type", None) in FAMILIES
            raise GraftError(f"plugin=hybrid: colossalai 0.5.0's shardformer has no policy for {arch} ({where}), so it "
                             "cannot be tensor-, pipeline- or sequence-parallel; use plugin=ddp or plugin=zero2"
                             + ("" if known else f" with a family Graft trains ({', '.join(FAMILIES)})"))
    family = family_of(config, where)
    if not isinstance(p, HybridPluginConfig):
        return
    if p.sp_size > 1 and family != "llama":
        # Mistral's policy switches sequence parallelism off with a warning; Qwen2's replaces attention with its
        # own, which reads the per-document mask as a padding mask.
        raise GraftError(f"plugin.sp_size={p.sp_size}: sequence parallelism is supported for the llama family only "
                         f"({arch} at {where}: colossalai 0.5.0 ignores it or drops the document mask); use sp_size=1")


def data_parallel(plugin) -> tuple:
    """(size, rank) of this process's data-parallel group: the ranks that read different packs."""
    import torch.distributed as dist

    group = getattr(plugin, "dp_group", None)
    if group is None:
        return dist.get_world_size(), dist.get_rank()
    return dist.get_world_size(group), dist.get_rank(group)
