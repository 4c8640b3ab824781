"""Colossal-AI Booster plugins, one builder per `plugin` config choice (add one: a function here + a YAML file)."""

from collections.abc import Callable

import torch

from research.config.plugin import PluginConfig
from research.config.train import TrainConfig
from research.errors import GraftError

Builder = Callable[[PluginConfig, TrainConfig, bool], object]
PLUGINS: dict[str, Builder] = {}


def register(name: str):
    def deco(fn: Builder) -> Builder:
        PLUGINS[name] = fn
        return fn

    return deco


@register("ddp")
def ddp(p: PluginConfig, t: TrainConfig, needs_unused: bool):
    from colossalai.booster.plugin import TorchDDPPlugin

    return TorchDDPPlugin(find_unused_parameters=p.get("find_unused_parameters", needs_unused),
                          broadcast_buffers=p.get("broadcast_buffers", True), bucket_cap_mb=p.get("bucket_cap_mb", 25))


def _zero(p: PluginConfig, t: TrainConfig, cpu_offload: bool):
    from colossalai.booster.plugin import LowLevelZeroPlugin

    # Overlapping reductions needs a second CUDA stream; on CPU there is one stream, so it is off there.
    overlap = p.get("overlap_communication", True) and torch.cuda.is_available()
    return LowLevelZeroPlugin(stage=p.get("stage", 2), precision=t.precision, max_norm=t.grad_clip,
                              reduce_bucket_size_in_m=p.get("reduce_bucket_size_in_m", 12),
                              overlap_communication=overlap, cpu_offload=p.get("cpu_offload", cpu_offload))


@register("zero2")
def zero2(p: PluginConfig, t: TrainConfig, needs_unused: bool):
    return _zero(p, t, cpu_offload=False)


@register("zero2_cpu")
def zero2_cpu(p: PluginConfig, t: TrainConfig, needs_unused: bool):
    return _zero(p, t, cpu_offload=True)


def _gemini(p: PluginConfig, t: TrainConfig, placement: str):
    if not torch.cuda.is_available():
        raise GraftError(f"plugin={p.name}: Gemini needs a CUDA GPU (its chunk manager and HybridAdam are GPU-only); "
                         "use plugin=ddp, zero2 or hybrid on CPU")
    from colossalai.booster.plugin import GeminiPlugin

    kw = {}
    if p.placement_policy == "static" or placement == "static":
        kw = {"offload_optim_frac": p.get("offload_optim_frac", 0.0),
              "offload_param_frac": p.get("offload_param_frac", 0.0)}
    return GeminiPlugin(placement_policy=p.get("placement_policy", placement), precision=t.precision,
                        max_norm=t.grad_clip, enable_flash_attention=p.get("enable_flash_attention", False), **kw)


@register("gemini")
def gemini(p: PluginConfig, t: TrainConfig, needs_unused: bool):
    return _gemini(p, t, "static")


@register("gemini_auto")
def gemini_auto(p: PluginConfig, t: TrainConfig, needs_unused: bool):
    return _gemini(p, t, "auto")


@register("hybrid")
def hybrid(p: PluginConfig, t: TrainConfig, needs_unused: bool):
    from colossalai.booster.plugin import HybridParallelPlugin

    sp_size, pp_size = p.get("sp_size", 1), p.get("pp_size", 1)
    kw = {}
    if sp_size > 1 or p.sp_mode is not None:
        kw = {"enable_sequence_parallelism": True, "sequence_parallelism_mode": p.get("sp_mode", "all_to_all")}
    if pp_size > 1:
        # One step's batch per data-parallel rank (micro_batch_size x grad_accum packs) goes through the pipeline
        # as its micro-batches; by default the same micro-batches a non-pipelined run accumulates.
        if p.num_microbatches is not None:
            kw["num_microbatches"] = p.num_microbatches
        else:
            kw["microbatch_size"] = p.get("microbatch_size", t.micro_batch_size)
        kw.update(pp_style=p.get("pp_style", "1f1b"), num_model_chunks=p.get("num_model_chunks", 1),
                  # Overlapped p2p posts sends and receives of neighbouring chunks together; over gloo the
                  # interleaved schedule then waits forever on the first exchange. On CPU, communicate in turn.
                  overlap_p2p=torch.cuda.is_available())
    return HybridParallelPlugin(
        tp_size=p.get("tp_size", 1), pp_size=pp_size, sp_size=sp_size, zero_stage=p.get("zero_stage", 0),
        precision=t.precision, max_norm=t.grad_clip,
        enable_flash_attention=p.get("enable_flash_attention", False),
        # The trainer computes per-token (and per-category) losses, which needs the full logits on every rank.
        parallel_output=p.get("parallel_output", False),
        make_vocab_size_divisible_by=p.get("make_vocab_size_divisible_by", 64),
        cpu_offload=p.get("cpu_offload", False),
        overlap_communication=p.get("overlap_communication", True) and torch.cuda.is_available(),
        find_unused_parameters=p.get("find_unused_parameters", needs_unused), **kw)


def pipeline_microbatches(p: PluginConfig, t: TrainConfig) -> tuple:
    """(micro-batch size, number of micro-batches) of one pipelined step on one data-parallel rank."""
    rows = t.micro_batch_size * t.grad_accum
    if p.num_microbatches is not None:
        if rows % p.num_microbatches:
            raise GraftError(f"plugin.num_microbatches={p.num_microbatches} must divide the {rows} packs of a step "
                             f"on one data-parallel rank (train.micro_batch_size x train.grad_accum)")
        return rows // p.num_microbatches, p.num_microbatches
    size = p.get("microbatch_size", t.micro_batch_size)
    if rows % size:
        raise GraftError(f"plugin.microbatch_size={size} must divide the {rows} packs of a step on one "
                         "data-parallel rank (train.micro_batch_size x train.grad_accum)")
    return size, rows // size


def check_attention(p: PluginConfig, t: TrainConfig) -> None:
    """Flash attention under a plugin (gemini, hybrid): refused where it would fail late or drop the document mask."""
    if not p.get("enable_flash_attention", False):
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
    pp = p.get("pp_size", 1) if p.name == "hybrid" else 1
    if pp == 1:
        return
    stages = pp * p.get("num_model_chunks", 1)
    if num_layers < stages:
        raise GraftError(f"plugin.pp_size={pp} x num_model_chunks={p.get('num_model_chunks', 1)} exceeds the "
                         f"model's {num_layers} decoder layers")
    size, count = pipeline_microbatches(p, t)
    if count < pp:
        raise GraftError(f"a step makes {count} pipeline micro-batch(es) of {size} pack(s), but plugin.pp_size={pp} "
                         f"needs at least {pp} (raise train.grad_accum to {-(-pp * size // t.micro_batch_size)} or more)")
    if p.get("pp_style", "1f1b") == "interleaved" and count % pp:
        raise GraftError(f"pp_style=interleaved needs the number of micro-batches ({count}) to be a multiple of "
                         f"plugin.pp_size={pp}")


def vocab_multiple(p: PluginConfig, vocab_size: int) -> int:
    """hybrid's make_vocab_size_divisible_by: as configured, else the largest of 64, 32, ..., 1 that, times
    tp_size, divides the vocabulary (no padding: colossalai cannot checkpoint padded embeddings)."""
    if p.make_vocab_size_divisible_by is not None:
        return p.make_vocab_size_divisible_by
    tp = p.get("tp_size", 1)
    return next((m for m in (64, 32, 16, 8, 4, 2) if vocab_size % (m * tp) == 0), 1)


def check_plugin(p: PluginConfig, world_size: int, vocab_size: int, fused_ce: bool) -> None:
    """Config errors that need the world size or the model; raised before any plugin is built."""
    if p.name.startswith("gemini") and not torch.cuda.is_available():
        raise GraftError(f"plugin={p.name}: Gemini needs a CUDA GPU (its chunk manager and HybridAdam are GPU-only); "
                         "use plugin=ddp, zero2 or hybrid on CPU")
    if p.name != "hybrid":
        return
    tp, sp = p.get("tp_size", 1), p.get("sp_size", 1)
    if world_size % (tp * p.get("pp_size", 1) * sp):
        raise GraftError(f"plugin.tp_size={tp} x pp_size={p.get('pp_size', 1)} x sp_size={sp} must divide the "
                         f"world size {world_size}")
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


def build_plugin(p: PluginConfig, t: TrainConfig, needs_unused: bool):
    if p.name not in PLUGINS:
        raise GraftError(f"plugin={p.name!r}: unknown (known: {', '.join(PLUGINS)})")
    return PLUGINS[p.name](p, t, needs_unused)


def data_parallel(plugin) -> tuple:
    """(size, rank) of this process's data-parallel group: the ranks that read different packs."""
    import torch.distributed as dist

    group = getattr(plugin, "dp_group", None)
    if group is None:
        return dist.get_world_size(), dist.get_rank()
    return dist.get_world_size(group), dist.get_rank(group)
