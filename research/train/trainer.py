"""Staged continual pre-training on a Colossal-AI Booster, in four phases (the shape of torchtitan's trainer):

check  -> Plan:     everything the user can get wrong (missing data, vocabulary mismatch, corrupt weights, plugin
                    options, a checkpoint of an incompatible or another configuration, a corrupt metrics.jsonl),
                    before the process group starts or any weight is loaded;
build  -> Built:    process group, model, optimizer and Booster; then the Progress to start from (a checkpoint's);
train:              the stages' loop of `train_step`s, logging and checkpointing as it goes; SIGINT or SIGTERM
                    stops it at the next step boundary with a checkpoint (research/train/interrupts.py);
finish -> summary:  the final model, summary.json.
"""

import json
import logging
import math
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf

from research import contracts
from research.config.plugin import HybridPluginConfig, PluginConfig
from research.config.root import GraftConfig
from research.config.schedule import StageConfig
from research.config.train import TrainConfig
from research.contracts import TOKENIZER_FILES, sha256_file
from research.errors import GraftError
from research.model.families import attention_window
from research.runinfo import write_run_files
from research.train import checkpoint as ckpt
from research.train import loader as D
from research.train.interrupts import Interrupted, StopSignals, exit_status
from research.train.plugins import (
    build_plugin,
    check_architecture,
    check_attention,
    check_pipeline,
    check_plugin,
    data_parallel,
    pipeline_microbatches,
    vocab_multiple,
)
from research.train.stage_plan import Schedule, Stage, stage_steps
from research.train.step_metrics import MetricsLog, flops_per_token, peak_flops, peak_memory_gb, read_metrics
from research.train.token_loss import PipelineLoss, accumulate, defer_lm_head, enable_fused_ce, forward_loss

if TYPE_CHECKING:
    from transformers import PretrainedConfig

log = logging.getLogger("graft")
MASK_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
FINGERPRINT_PLUGIN_KEYS = ("name", "tp_size", "pp_size", "sp_size", "zero_stage", "stage")
"""Plugin options a checkpoint must have been written under to resume (None where a plugin has no such option)."""


@dataclass
class Plan:
    """A run's checked inputs: the plugin, the model's config, the data, the stages and where to resume."""

    cfg: GraftConfig
    raw: DictConfig
    rank: int
    world: int
    plugin: PluginConfig
    folder: Path | None
    """The HF model folder; None in benchmark mode (a random model from the `model` group)."""
    window: int | None
    """The model's sliding attention window within the packs (None: full causal), folded into the document mask."""
    model_config: "PretrainedConfig"
    """The model's transformers config (a family of research.model.families)."""
    manifest: contracts.Manifest
    streams: list
    stages: list[Stage]
    schedule: Schedule
    end_step: int
    fingerprint: dict
    run_record: dict
    """What defines the run (checkpoint.run_record): a resume under another one is refused."""
    resume_from: Path | None
    new_rows_base: int | None = None
    """A stage trains only the new rows: the base tokenizer's size, where the matrices split (research/train/new_rows.py)."""

    @property
    def t(self) -> TrainConfig:
        return self.cfg.train

    @property
    def out(self) -> Path:
        return Path(self.cfg.out_dir)

    @property
    def pipelined(self) -> bool:
        return self.plugin.mesh()["pp"] > 1

    @property
    def dp_size(self) -> int:
        return self.world // math.prod(self.plugin.mesh().values())

    @property
    def global_batch(self) -> int:
        return self.t.micro_batch_size * self.t.grad_accum * self.dp_size

    @property
    def ncat(self) -> int:
        return len(self.manifest.categories)


@dataclass
class Built:
    """The live objects of a run: boosted model and optimizer, and the process groups it reduces over."""

    booster: object
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    fused: bool
    """The forward computes the fused loss (or, pipelined, the last stage's criterion does)."""
    num_params: int
    sizes: dict
    """name -> numel of every parameter of the model before boosting (a tied matrix once, as embed_tokens)."""
    dp_rank: int
    dp_group: object
    pp_group: object
    head: torch.nn.Module | None
    """Pipelined with the fused loss, the last stage's lm_head (see token_loss.defer_lm_head)."""
    pipe_size: int
    """Pipelined, the micro-batch size; else 0."""


@dataclass
class Progress:
    """Where the run stands: what a checkpoint restores, and the throughput the summary reports."""

    step: int
    position: int
    """Packs of the current stage consumed so far, over all data-parallel ranks."""
    tokens_seen: dict
    last_saved: int = -1
    loss: float | None = None
    """The last step's loss (None until this process ran one)."""
    timed_tokens: int = 0
    timed_time: float = 0.0
    timed_slots: int = 0


@dataclass
class Monitor:
    """Where steps are reported, and what checkpoints and MFU need besides the model."""

    metrics: MetricsLog
    config_yaml: str
    peak: float | None
    flops_per_token: float


@dataclass
class Feed:
    """The current stage's batches (this rank's share) and its trainable parameter count."""

    stage: Stage
    batches: Iterator = field(repr=False)
    trainable: int


_KEEP_UNTIL_EXIT: list = []


def run(cfg: GraftConfig, raw: DictConfig) -> dict:
    """Train by the config; returns the summary (also written to out_dir/summary.json).

    SIGINT or SIGTERM during the training loop: every rank stops at the next step boundary, the checkpoint of
    that step is saved, and the run exits with one line and status 128 + the signal (130, 143). Before and after
    the loop (loading, the final save) a signal acts as usual (the latest complete checkpoint stays)."""
    plan = check(cfg, raw)
    built = build(plan)
    if plan.world > 1:
        # Kept alive until the worker's os._exit (research/train/__main__.py): freed when this frame ends, the DDP
        # model and its reducer were seen blocking a rank for good in a C-level wait after the process group was
        # destroyed (2 CPU processes, gloo), with every output already written.
        _KEEP_UNTIL_EXIT.append(built)
    progress = resume(plan, built)
    monitor = start_monitor(plan, built, progress)
    try:
        train(plan, built, progress, monitor)
    except Interrupted as stop:
        raise SystemExit(stop_run(plan, monitor, stop)) from None
    return finish(plan, built, progress, monitor)


# ---- check: inputs, before any process group or weight -------------------------------------------------------

def check(cfg: GraftConfig, raw: DictConfig) -> Plan:
    """The run's inputs, checked; in benchmark mode its synthetic data written; an earlier run's files cleared."""
    t = cfg.train
    rank, world = _env_world()
    folder, mc = _model_config(cfg)
    p = _checked_plugin(cfg, world, mc, folder)
    dp_size = world // math.prod(p.mesh().values())
    manifest, buckets, stage_cfgs = _data(cfg, rank, dp_size, mc)
    new_rows_base = _new_rows(stage_cfgs, folder, p)
    if not t.benchmark:
        _check_vocab(manifest, buckets, folder, mc)
    window = attention_window(mc, manifest.max_length, _where(cfg, folder))
    global_batch = t.micro_batch_size * t.grad_accum * dp_size
    streams, stages = _stages(stage_cfgs, buckets, manifest, t.seed, global_batch)
    schedule = Schedule(stages, t.lr)
    end_step = min(schedule.total_steps, t.max_steps) if t.max_steps else schedule.total_steps
    options = {f.name: getattr(p, f.name) for f in fields(p)}
    fingerprint = {
        # the shape, then the family and tying (same-shaped families load each other's weights without a word)
        "model": {k: getattr(mc, k) for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                              "num_attention_heads", "num_key_value_heads", "model_type",
                                              "tie_word_embeddings")},
        "plugin": {k: options.get(k) for k in FINGERPRINT_PLUGIN_KEYS},
        "world_size": world, "global_batch": global_batch, "max_length": manifest.max_length,
        "stages": [[s.config.name, s.steps] for s in stages],
    }
    record = ckpt.run_record(raw, manifest.raw)
    resume_from = _resume_or_clear(cfg, rank, fingerprint, record)
    return Plan(cfg, raw, rank, world, p, folder, window, mc, manifest, streams, stages, schedule, end_step, fingerprint,
                record, resume_from, new_rows_base)


def _new_rows(stage_cfgs: list, folder: Path | None, p: PluginConfig) -> int | None:
    """The base size where a `new_rows_only` stage splits the matrices, checked (None without such a stage)."""
    from research.train import new_rows

    at = [i for i, s in enumerate(stage_cfgs) if s.freeze == new_rows.POLICY]
    if not at:
        return None
    key = f"schedule.stages.{at[0]}.freeze"
    if p.name not in new_rows.PLUGINS:
        raise GraftError(f"{key}={new_rows.POLICY}: runs under plugin={'|'.join(new_rows.PLUGINS)}, not "
                         f"plugin={p.name} (it shards or wraps the embeddings itself)")
    return new_rows.base_size(folder, key)


def _checked_plugin(cfg: GraftConfig, world: int, mc, folder: Path | None) -> PluginConfig:
    """The plugin config, checked against the world and the model (its architecture first: a family the plugin
    cannot shard, or Graft cannot train), with hybrid's vocabulary multiple decided."""
    p, t = cfg.plugin, cfg.train
    check_architecture(p, mc, _where(cfg, folder))
    check_plugin(p, world, mc.vocab_size, cfg.model.fused_ce)
    check_pipeline(p, t, mc.num_hidden_layers)
    check_attention(p, t)
    if isinstance(p, HybridPluginConfig):
        p = replace(p, make_vocab_size_divisible_by=vocab_multiple(p, mc.vocab_size))
    return p


def _where(cfg: GraftConfig, folder: Path | None) -> str:
    """Where the model's config comes from, for messages: the folder's config.json, or the `model` group."""
    return str(folder / "config.json") if folder is not None else f"model.family={cfg.model.family}"


def _data(cfg: GraftConfig, rank: int, dp_size: int, mc) -> tuple:
    """(manifest, bucket datasets, stage configs): prepare_data's output, or in benchmark mode synthetic packs."""
    t = cfg.train
    if t.benchmark:
        from research.train.synthetic import write_synthetic_buckets

        data_dir = Path(cfg.out_dir) / "benchmark_data" / f"rank_{rank}"  # each rank its own copy: no race, no barrier
        seq = min(t.benchmark_seq_len, mc.max_position_embeddings)
        write_synthetic_buckets(data_dir, mc.vocab_size, seq, num_buckets=1,
                                packs_per_bucket=t.micro_batch_size * t.grad_accum * dp_size *
                                (t.benchmark_steps + t.benchmark_warmup), seed=t.seed)
        stage_cfgs = [StageConfig(name="benchmark", steps=t.benchmark_steps + t.benchmark_warmup, decay="constant")]
    else:
        data_dir = Path(cfg.paths.data)
        stage_cfgs = list(cfg.schedule.stages)
    manifest = contracts.read_manifest(data_dir)
    return manifest, contracts.load_buckets(manifest), stage_cfgs


def _stages(stage_cfgs: list, buckets: list, manifest: contracts.Manifest, seed: int, global_batch: int) -> tuple:
    """(one sample stream per stage, the stages laid end to end in steps)."""
    streams, stages, start = [], [], 0
    for i, sc in enumerate(stage_cfgs):
        stream = D.StageStream(sc, i, buckets, manifest.categories, seed)
        n = stage_steps(sc, stream.length, global_batch, manifest.max_length)
        streams.append(stream)
        stages.append(Stage(i, sc, start, n, stream.length))
        start += n
    return streams, stages


def _resume_or_clear(cfg: GraftConfig, rank: int, fingerprint: dict, record: dict) -> Path | None:
    """The checkpoint to resume from, checked to be this run's; without one, an earlier run's files go (or fail)."""
    t, out = cfg.train, Path(cfg.out_dir)
    root = out / "checkpoints"
    resume_from = ckpt.latest(root) if (t.resume and not t.benchmark) else None
    if resume_from is not None:
        state = ckpt.read_state(resume_from)
        ckpt.check_same_run(resume_from, state.get("run"), record)
        ckpt.check_compatible(resume_from, state.get("fingerprint", {}), fingerprint)
        if rank == 0:
            read_metrics(out / "metrics.jsonl")  # a corrupt line (not a torn last one) fails here, not after the group
    elif rank == 0 and not t.benchmark and (root.exists() or (out / "metrics.jsonl").exists()):
        if not cfg.overwrite:
            raise GraftError(f"out_dir={str(out)!r} holds an earlier run and overwrite=false (or resume it)")
        shutil.rmtree(root, ignore_errors=True)
        (out / "metrics.jsonl").unlink(missing_ok=True)
    return resume_from


def _env_world() -> tuple:
    if "RANK" not in os.environ:
        with socket.socket() as s:  # a single process: give it a private rendezvous port
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])


def _model_config(cfg: GraftConfig):
    """(model folder or None, its transformers config): the folder at paths.model (config.json read, no remote
    code; its family is checked with the plugin, in _checked_plugin), or in benchmark mode the `model` group's."""
    from research.model.build import model_config, read_config

    folder = Path(cfg.paths.model)
    if (folder / "config.json").is_file():
        _check_model_files(folder)
        return folder, read_config(folder, "paths.model")
    if not cfg.train.benchmark:
        raise GraftError(f"paths.model={str(folder)!r}: no HF model folder there (config.json missing; "
                         "run python -m research.init_model)")
    return None, model_config(cfg.model)


def _check_model_files(folder: Path) -> None:
    """The model folder's files readable and its safetensors weights whole (headers against sizes), so that a
    truncated or corrupt file is one line naming it, not a traceback once the process group runs."""
    from research.model.weights import check_readable, check_weights

    check_readable(folder, "paths.model")
    check_weights(folder, "paths.model")


def _check_vocab(manifest: contracts.Manifest, buckets: list, folder, mc) -> None:
    V, where = mc.vocab_size, manifest.root / "manifest.json"
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        value = manifest.raw.get(key)
        if value is not None and not 0 <= value < V:
            raise GraftError(f"{where}: {key}={value} is outside the model's vocabulary of {V} (tokenizer/model mismatch)")
    if manifest.raw.get("vocab_size", 0) > V:
        raise GraftError(f"{where}: vocab_size={manifest.raw['vocab_size']} exceeds the model's embedding rows {V}")
    for path, ds in zip(manifest.bucket_paths, buckets, strict=True):
        top = D.max_token_id(ds)
        if top >= V:
            raise GraftError(f"{path}: token id {top} >= the model's vocab_size {V} (data tokenized with another "
                             "tokenizer than the model's)")
    if manifest.max_length > mc.max_position_embeddings:
        raise GraftError(f"{where}: max_length={manifest.max_length} exceeds the model's max_position_embeddings="
                         f"{mc.max_position_embeddings}")
    hashes = manifest.raw.get("hashes", {}).get("tokenizer", {})
    if folder is not None and hashes:
        for name, digest in hashes.items():
            if name in TOKENIZER_FILES and (folder / name).is_file() and sha256_file(folder / name) != digest:
                raise GraftError(f"{folder / name}: differs from the tokenizer the data was prepared with "
                                 f"({where} hashes.tokenizer.{name})")


# ---- build: process group, model, optimizer, Booster; the progress to start from -------------------------------

def build(plan: Plan) -> Built:
    """Start the process group, build the model and optimizer and put them on the Booster plugin."""
    import colossalai
    from colossalai.booster import Booster

    from research.train import upstream_fixes

    t, p = plan.t, plan.plugin
    upstream_fixes.apply()
    if not torch.cuda.is_available():
        from research.train import cpu_compat

        cpu_compat.apply()
    colossalai.launch_from_torch(backend="nccl" if torch.cuda.is_available() else "gloo", seed=t.seed, verbose=False)
    model, fused = _model(plan)
    sizes = {name: q.numel() for name, q in model.named_parameters()}
    num_params = sum(sizes.values())
    optimizer = torch.optim.AdamW(_param_groups(model, t.weight_decay), lr=t.lr, betas=tuple(t.betas), eps=t.eps)
    plugin = build_plugin(p, t, needs_unused=any(s.config.freeze != "full" for s in plan.stages),
                          model_config=plan.model_config)
    # TorchDDPPlugin leaves mixed precision to the Booster; the other plugins take train.precision themselves.
    amp = {"bf16": "bf16", "fp16": "fp16"}.get(t.precision) if p.name == "ddp" else None
    booster = Booster(plugin=plugin, mixed_precision=amp)
    model, optimizer, *_ = booster.boost(model, optimizer)
    dp_size, dp_rank = data_parallel(plugin)
    if dp_size != plan.dp_size:
        raise GraftError(f"data-parallel size {dp_size} differs from the expected {plan.dp_size}")
    head = defer_lm_head(model.unwrap()) if fused and plan.pipelined and plugin.stage_manager.is_last_stage() else None
    return Built(booster, model, optimizer, fused, num_params, sizes, dp_rank, getattr(plugin, "dp_group", None),
                 plugin.pp_group if plan.pipelined else None, head,
                 pipeline_microbatches(p, t)[0] if plan.pipelined else 0)


def _model(plan: Plan) -> tuple:
    """(the model before boosting, whether its loss is the fused one). SDPA attention always: it takes the additive
    per-document mask as given on every path (colossalai's pipelined Qwen2 forward inverts a 4-D mask under eager)."""
    from transformers import AutoModelForCausalLM

    cfg, folder = plan.cfg, plan.folder
    torch.manual_seed(cfg.train.seed)
    if folder is not None:
        model = AutoModelForCausalLM.from_pretrained(str(folder), config=plan.model_config, torch_dtype=torch.float32,
                                                     use_safetensors=True, trust_remote_code=False,
                                                     attn_implementation="sdpa")
    else:
        model = AutoModelForCausalLM.from_config(plan.model_config, torch_dtype=torch.float32,
                                                 attn_implementation="sdpa")
    if plan.new_rows_base is not None:
        from research.train import new_rows

        new_rows.split(model, plan.new_rows_base)
    # Pipelined, the last stage's criterion computes the fused loss (set up after boost); otherwise the forward does.
    fused = cfg.model.fused_ce and (plan.pipelined or enable_fused_ce(model, cfg.model.fused_ce_impl))
    if cfg.train.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model, fused


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list:
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def resume(plan: Plan, built: Built) -> Progress:
    """Step 0, or the latest checkpoint's step, sample position and tokens seen (and its weights, optimizer, RNG)."""
    if plan.resume_from is None:
        return Progress(step=0, position=0, tokens_seen={s.config.name: 0 for s in plan.stages})
    state = ckpt.load(built.booster, built.model, built.optimizer, plan.resume_from)
    if plan.rank == 0:
        log.info("resumed from %s (step %d, stage %s)", plan.resume_from, state["step"], state["stage_name"])
    return Progress(step=state["step"], position=state["sample_position"], tokens_seen=state["tokens_seen"],
                    last_saved=state["step"])


def start_monitor(plan: Plan, built: Built, progress: Progress) -> Monitor:
    """metrics.jsonl (cut back to the resumed step) and W&B, on rank 0 only."""
    cfg, t = plan.cfg, plan.t
    if plan.rank == 0:
        plan.out.mkdir(parents=True, exist_ok=True)
    metrics = MetricsLog(plan.out / "metrics.jsonl", progress.step, enabled=plan.rank == 0 and not t.benchmark,
                         cfg=cfg if cfg.logger.wandb_mode != "disabled" else None, raw=plan.raw)
    return Monitor(metrics, OmegaConf.to_yaml(plan.raw, resolve=True), peak_flops(t.peak_flops),
                   flops_per_token(plan.model_config, built.num_params, plan.manifest.max_length))


# ---- train: the loop over stages and steps -------------------------------------------------------------------

def train(plan: Plan, built: Built, progress: Progress, monitor: Monitor) -> None:
    """Step from `progress` to the plan's end step, stage by stage; log and checkpoint on the way."""
    from tqdm import tqdm

    t = plan.t
    bar = tqdm(total=plan.end_step, initial=progress.step, disable=plan.rank != 0, desc="train", unit="step",
               dynamic_ncols=True)
    feed = None
    with StopSignals() as stop:
        while progress.step < plan.end_step:
            stage, _ = plan.schedule.lookup(progress.step)
            if feed is None or stage is not feed.stage:
                if feed is not None:  # a new stage starts at its stream's beginning; a resumed one where it stopped
                    progress.position = 0
                feed = enter_stage(plan, built, progress, stage)
            record = train_step(plan, built, progress, monitor, feed)
            if progress.step % t.log_every == 0 or progress.step == plan.end_step:
                monitor.metrics.log(record)
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4f}", stage=stage.config.name)
            ckpt.fault("kill_after_step", progress.step)
            every = t.checkpoint_every and progress.step % t.checkpoint_every == 0
            if not t.benchmark and (every or progress.step == plan.end_step):
                save_checkpoint(plan, built, progress, monitor, stage, record)
            stop.fault_wait(progress.step)
            signum = stop.agreed()  # once per step, every rank: all stop at the same step
            if signum:
                bar.close()
                raise Interrupted(signum, progress.step, _checkpoint_to_stop(plan, built, progress, monitor, stage,
                                                                             record))
    bar.close()


def _checkpoint_to_stop(plan: Plan, built: Built, progress: Progress, monitor: Monitor, stage: Stage,
                        record: dict) -> Path | None:
    """The checkpoint of the step the run stops at, saved unless it already is (none in benchmark mode)."""
    if plan.t.benchmark:
        return None
    if progress.last_saved != progress.step:
        save_checkpoint(plan, built, progress, monitor, stage, record)
    return ckpt.step_dir(plan.out / "checkpoints", progress.step)


def stop_run(plan: Plan, monitor: Monitor, stop: Interrupted) -> int:
    """End an interrupted run (every rank): the W&B run, the process group, one line from rank 0; returns the
    exit status (130 for SIGINT, 143 for SIGTERM). No final model, no summary.json: the run is not over."""
    monitor.metrics.finish(None)
    dist.barrier()
    dist.destroy_process_group()
    if plan.rank == 0:
        print(stop.message(), file=sys.stderr, flush=True)
    return exit_status(stop.signum)


def trains(name: str, policy: str) -> bool:
    """Whether parameter `name` trains under a stage's freeze policy (embeddings_only: the input embeddings and
    lm_head, which are one parameter when tied; new_rows_only: their `new_rows` parts, research/train/new_rows.py)."""
    if policy == "new_rows_only":
        return name.endswith("new_rows")
    return policy == "full" or "embed_tokens" in name or "lm_head" in name


def apply_freeze(model: torch.nn.Module, policy: str, sizes: dict | None = None) -> int:
    """Set requires_grad by the stage's policy; return the number of trainable parameters.

    Frozen parameters get no gradient, so AdamW neither decays nor updates them and creates no state for them;
    parameters that train in consecutive stages keep their optimizer state (one optimizer for the whole run).
    The count is over `sizes` (name -> numel of the whole model before boosting, a tied matrix once) when given, so
    that it means the same under every plugin (tensor-parallel ranks hold shards, pipeline stages some layers, and
    a pipeline's last stage a synchronised copy of tied embeddings); else over `model`'s own parameters.
    """
    n = 0
    for name, p in model.named_parameters():
        p.requires_grad_(trains(name, policy))
        n += p.numel() if trains(name, policy) else 0
    return n if sizes is None else sum(size for name, size in sizes.items() if trains(name, policy))


def enter_stage(plan: Plan, built: Built, progress: Progress, stage: Stage) -> Feed:
    """Freeze by the stage's policy and open its batches from the current position to its last step in this run."""
    t = plan.t
    trainable = apply_freeze(built.model.unwrap(), stage.config.freeze, built.sizes)
    n_steps = min(stage.end, plan.end_step) - progress.step
    dataset = D.RankSlice(plan.streams[stage.index], progress.position, n_steps, t.micro_batch_size, t.grad_accum,
                          plan.dp_size, built.dp_rank)
    collate = D.Collator(plan.manifest.categories, t.doc_mask, MASK_DTYPES[t.precision], plan.window)
    # Pipelined, one loader batch is a whole step (the schedule splits it into micro-batches).
    loader = torch.utils.data.DataLoader(dataset, shuffle=False, collate_fn=collate,
                                         batch_size=t.micro_batch_size * (t.grad_accum if plan.pipelined else 1),
                                         num_workers=t.num_workers)
    return Feed(stage, iter(loader), trainable)


def train_step(plan: Plan, built: Built, progress: Progress, monitor: Monitor, feed: Feed) -> dict:
    """One optimizer step on one global batch; advances `progress` and returns the step's metrics record."""
    lr = plan.schedule.lr(progress.step)
    for group in built.optimizer.param_groups:
        group["lr"] = lr
    t0 = time.perf_counter()
    sums = torch.zeros(2 + 2 * plan.ncat + 1, dtype=torch.float64)  # loss sum, count, per-category, real tokens
    bucket = (_pipeline_pass if plan.pipelined else _accumulate_pass)(plan, built, feed, sums)
    grad_norm = _optimizer_step(plan, built)
    dist.all_reduce(sums, group=built.dp_group)
    if built.pp_group is not None:  # only the last stage computed the loss; the others add zeros
        dist.all_reduce(sums, group=built.pp_group)
    dt = time.perf_counter() - t0
    _advance(plan, progress, feed.stage, int(sums[-1]), dt)
    record = {"step": progress.step, "stage": feed.stage.config.name, "bucket": bucket, "lr": lr,
              "loss": float(sums[0] / max(sums[1], 1)), "grad_norm": grad_norm, "tokens": int(sums[-1]),
              "tokens_per_s": float(sums[-1]) / dt, "step_time_s": dt, "trainable_params": feed.trainable,
              "peak_memory_gb": peak_memory_gb(), "tokens_seen": dict(progress.tokens_seen)}
    if monitor.peak:
        record["mfu"] = monitor.flops_per_token * plan.global_batch * plan.manifest.max_length / dt / \
            (monitor.peak * plan.world)
    for c, name in enumerate(plan.manifest.categories):
        if sums[2 + plan.ncat + c] > 0:
            record[f"loss/{name}"] = float(sums[2 + c] / sums[2 + plan.ncat + c])
    progress.loss = record["loss"]
    return record


def _accumulate_pass(plan: Plan, built: Built, feed: Feed, sums: torch.Tensor) -> int:
    """Forward and backward over train.grad_accum micro-batches; returns the last one's bucket."""
    t = plan.t
    for _ in range(t.grad_accum):
        batch = next(feed.batches)
        loss, per_token, count = forward_loss(built.model, batch, built.fused)
        built.booster.backward(loss / t.grad_accum, built.optimizer)
        accumulate(sums, loss, per_token, count, batch, plan.manifest.pad_token_id, plan.ncat)
    return batch["buckets"][-1]


def _pipeline_pass(plan: Plan, built: Built, feed: Feed, sums: torch.Tensor) -> int:
    """Forward and backward of the whole step's batch through the pipeline schedule; returns its last bucket."""
    batch = next(feed.batches)
    criterion = PipelineLoss(batch, built.pipe_size, sums, plan.manifest.pad_token_id, plan.ncat, built.head,
                             plan.cfg.model.fused_ce_impl)
    inputs = {k: batch[k] for k in ("input_ids", "position_ids", "attention_mask") if k in batch}
    built.booster.execute_pipeline(iter([inputs]), built.model, criterion, built.optimizer, return_loss=False)
    return batch["buckets"][-1]


def _optimizer_step(plan: Plan, built: Built) -> float:
    """Clip, step, zero the gradients; returns the gradient norm before clipping."""
    t, optimizer = plan.t, built.optimizer
    if plan.plugin.name == "ddp":
        # TorchDDPPlugin's optimizer clips only when asked (and returns the norm); the others clip inside step().
        grad_norm = float(optimizer.clip_grad_by_norm(t.grad_clip if t.grad_clip > 0 else math.inf))
    optimizer.step()
    if plan.plugin.name != "ddp":
        norm = optimizer.get_grad_norm()
        grad_norm = float(norm) if norm is not None else float("nan")
    optimizer.zero_grad()
    return grad_norm


def _advance(plan: Plan, progress: Progress, stage: Stage, tokens: int, dt: float) -> None:
    t = plan.t
    progress.step += 1
    progress.position += plan.global_batch
    progress.tokens_seen[stage.config.name] += tokens
    if progress.step > t.benchmark_warmup or not t.benchmark:  # benchmark warm-up steps are not timed
        progress.timed_tokens += tokens
        progress.timed_time += dt
        progress.timed_slots += plan.global_batch * plan.manifest.max_length


def save_checkpoint(plan: Plan, built: Built, progress: Progress, monitor: Monitor, stage: Stage,
                    record: dict) -> None:
    """Everything a resume needs, after the step `record` reports (see research.train.checkpoint)."""
    # Recorded as the stage of the next step, so a resume at a stage boundary starts the next stream from 0.
    next_stage, _ = plan.schedule.lookup(progress.step)
    state = {"step": progress.step, "stage": next_stage.index, "stage_name": next_stage.config.name,
             "sample_position": progress.position if next_stage is stage else 0, "bucket": record["bucket"],
             "tokens_seen": progress.tokens_seen, "fingerprint": plan.fingerprint, "lr": record["lr"],
             "run": plan.run_record}
    ckpt.save(built.booster, built.model, built.optimizer, plan.out / "checkpoints", progress.step, state,
              monitor.config_yaml, plan.t.keep_last)
    progress.last_saved = progress.step


# ---- finish: final model and summary ---------------------------------------------------------------------------

def finish(plan: Plan, built: Built, progress: Progress, monitor: Monitor) -> dict:
    """Save the final model (unless benchmarking), write summary.json and config.yaml, end the process group."""
    summary = _summary(plan, built, progress, monitor)
    if not plan.t.benchmark and progress.step > 0:
        _save_final(plan, built)
    if plan.rank == 0:
        write_run_files(plan.out, plan.raw, summary)
        monitor.metrics.finish(summary)
        print(json.dumps({k: summary[k] for k in ("steps", "tokens_per_s", "mfu", "final_loss")}), flush=True)
    dist.barrier()
    dist.destroy_process_group()
    return summary


def _summary(plan: Plan, built: Built, progress: Progress, monitor: Monitor) -> dict:
    t, total, peak, world = plan.t, plan.schedule.total_steps, monitor.peak, plan.world
    timed_time, fpt = progress.timed_time, monitor.flops_per_token
    return {"steps": progress.step, "total_steps": total, "completed": progress.step >= total,
            "plugin": plan.plugin.name, "world_size": world, "dp_size": plan.dp_size,
            "global_batch": plan.global_batch, "mesh": {"dp": plan.dp_size, **plan.plugin.mesh()},
            "num_params": built.num_params, "tokens_seen": progress.tokens_seen, "fused_ce": built.fused,
            "doc_mask": t.doc_mask,
            "stages": [{"name": s.config.name, "start": s.start, "steps": s.steps, "packs_per_pass": s.num_packs,
                        "freeze": s.config.freeze} for s in plan.stages],
            "tokens_per_s": progress.timed_tokens / timed_time if timed_time else None,
            "mfu": (fpt * progress.timed_slots / timed_time / (peak * world)) if (peak and timed_time) else None,
            "flops_per_token": fpt, "peak_flops_per_device": peak, "peak_memory_gb": peak_memory_gb(),
            "last_checkpoint": progress.last_saved, "final_loss": progress.loss}


def _save_final(plan: Plan, built: Built) -> None:
    """The trained model as one HF folder `final/` (with the tokenizer files), renamed into place when complete."""
    out, folder = plan.out, plan.folder
    tmp = out / ".final.tmp"
    if plan.rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    dist.barrier()
    if plan.new_rows_base is not None:  # final/ is the family's own modules, not the training-time split
        from research.train import new_rows

        new_rows.merge(built.model.unwrap())
    built.booster.save_model(built.model, str(tmp), shard=True, use_safetensors=True)
    dist.barrier()
    if plan.rank == 0:
        for name in TOKENIZER_FILES:
            if folder is not None and (folder / name).is_file():
                shutil.copy2(folder / name, tmp / name)
        shutil.rmtree(out / "final", ignore_errors=True)
        os.replace(tmp, out / "final")
