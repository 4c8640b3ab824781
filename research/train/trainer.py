"""Staged continual pre-training on a Colossal-AI Booster: check inputs, build, (resume,) train, save.

Everything the user can get wrong (missing data, vocabulary mismatch, plugin options, an incompatible checkpoint)
is checked before the process group starts or any weight is loaded.
"""

import dataclasses
import json
import logging
import math
import os
import shutil
import socket
import time
from pathlib import Path

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf

from research import contracts
from research.config.root import GraftConfig
from research.config.schedule import StageConfig
from research.contracts import TOKENIZER_FILES, sha256_file
from research.errors import GraftError
from research.runinfo import write_run_files
from research.train import checkpoint as ckpt
from research.train import loader as D
from research.train.plugins import (
    build_plugin,
    check_attention,
    check_pipeline,
    check_plugin,
    data_parallel,
    pipeline_microbatches,
    vocab_multiple,
)
from research.train.stage_plan import Schedule, Stage, stage_steps
from research.train.step_metrics import MetricsLog, flops_per_token, peak_flops, peak_memory_gb
from research.train.token_loss import PipelineLoss, accumulate, defer_lm_head, enable_fused_ce, forward_loss

log = logging.getLogger("graft")
MASK_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _env_world() -> tuple:
    if "RANK" not in os.environ:
        with socket.socket() as s:  # a single process: give it a private rendezvous port
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])


def _model_config(cfg: GraftConfig):
    """(model folder or None, LlamaConfig): the folder at paths.model, or in benchmark mode the `model` group."""
    from transformers import LlamaConfig

    folder = Path(cfg.paths.model)
    if (folder / "config.json").is_file():
        return folder, LlamaConfig.from_pretrained(str(folder))
    if not cfg.train.benchmark:
        raise GraftError(f"paths.model={str(folder)!r}: no HF model folder there (config.json missing; "
                         "run python -m research.init_model)")
    m = cfg.model
    return None, LlamaConfig(vocab_size=m.vocab_size, hidden_size=m.hidden_size, intermediate_size=m.intermediate_size,
                             num_hidden_layers=m.num_hidden_layers, num_attention_heads=m.num_attention_heads,
                             num_key_value_heads=m.num_key_value_heads, rms_norm_eps=m.rms_norm_eps,
                             max_position_embeddings=m.max_position_embeddings, rope_theta=m.rope_theta,
                             tie_word_embeddings=m.tie_word_embeddings)


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


def apply_freeze(model: torch.nn.Module, policy: str) -> int:
    """Set requires_grad by the stage's policy; return the number of trainable parameters.

    Frozen parameters get no gradient, so AdamW neither decays nor updates them and creates no state for them;
    parameters that train in consecutive stages keep their optimizer state (one optimizer for the whole run).
    """
    n = 0
    for name, p in model.named_parameters():
        train = policy == "full" or "embed_tokens" in name or "lm_head" in name
        p.requires_grad_(train)
        n += p.numel() if train else 0
    return n


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list:
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def run(cfg: GraftConfig, raw: DictConfig) -> dict:
    t, out = cfg.train, Path(cfg.out_dir)
    rank, world = _env_world()
    p = cfg.plugin
    mesh = {k: p.get(f"{k}_size", 1) if p.name == "hybrid" else 1 for k in ("tp", "pp", "sp")}
    mp = math.prod(mesh.values())

    # ---- inputs, checked before any process group or weight -------------------------------------------------
    folder, mc = _model_config(cfg)
    check_plugin(p, world, mc.vocab_size, cfg.model.fused_ce)
    check_pipeline(p, t, mc.num_hidden_layers)
    check_attention(p, t)
    if p.name == "hybrid":
        p = dataclasses.replace(p, make_vocab_size_divisible_by=vocab_multiple(p, mc.vocab_size))
    pipelined = mesh["pp"] > 1
    if t.benchmark:
        from research.train.synthetic import write_synthetic_buckets

        data_dir = out / "benchmark_data" / f"rank_{rank}"  # each rank its own identical copy: no race, no barrier
        seq = min(t.benchmark_seq_len, mc.max_position_embeddings)
        write_synthetic_buckets(data_dir, mc.vocab_size, seq, num_buckets=1,
                                packs_per_bucket=t.micro_batch_size * t.grad_accum * (world // mp) *
                                (t.benchmark_steps + t.benchmark_warmup), seed=t.seed)
        stage_cfgs = [StageConfig(name="benchmark", steps=t.benchmark_steps + t.benchmark_warmup, decay="constant")]
    else:
        data_dir = Path(cfg.paths.data)
        stage_cfgs = list(cfg.schedule.stages)
    manifest = contracts.read_manifest(data_dir)
    buckets = contracts.load_buckets(manifest)
    if not t.benchmark:
        _check_vocab(manifest, buckets, folder, mc)
    dp_size = world // mp
    global_batch = t.micro_batch_size * t.grad_accum * dp_size
    streams, stages, start = [], [], 0
    for i, sc in enumerate(stage_cfgs):
        stream = D.StageStream(sc, i, buckets, manifest.categories, t.seed)
        n = stage_steps(sc, stream.length, global_batch, manifest.max_length)
        streams.append(stream)
        stages.append(Stage(i, sc, start, n, stream.length))
        start += n
    schedule = Schedule(stages, t.lr)
    end_step = min(schedule.total_steps, t.max_steps) if t.max_steps else schedule.total_steps
    fingerprint = {
        "model": {k: getattr(mc, k) for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                              "num_attention_heads", "num_key_value_heads")},
        "plugin": {"name": p.name, "tp_size": p.tp_size, "pp_size": p.pp_size, "sp_size": p.sp_size,
                   "zero_stage": p.zero_stage, "stage": p.stage},
        "world_size": world, "global_batch": global_batch, "max_length": manifest.max_length,
        "stages": [[s.config.name, s.steps] for s in stages],
    }
    root = out / "checkpoints"
    resume_from = ckpt.latest(root) if (t.resume and not t.benchmark) else None
    if resume_from is not None:
        ckpt.check_compatible(resume_from, ckpt.read_state(resume_from).get("fingerprint", {}), fingerprint)
    elif rank == 0 and not t.benchmark and (root.exists() or (out / "metrics.jsonl").exists()):
        if not cfg.overwrite:
            raise GraftError(f"out_dir={str(out)!r} holds an earlier run and overwrite=false (or resume it)")
        shutil.rmtree(root, ignore_errors=True)
        (out / "metrics.jsonl").unlink(missing_ok=True)

    # ---- build ------------------------------------------------------------------------------------------------
    import colossalai
    from colossalai.booster import Booster

    from research.train import upstream_fixes

    upstream_fixes.apply()
    if not torch.cuda.is_available():
        from research.train import cpu_compat

        cpu_compat.apply()
    colossalai.launch_from_torch(backend="nccl" if torch.cuda.is_available() else "gloo", seed=t.seed, verbose=False)
    from transformers import LlamaForCausalLM

    torch.manual_seed(t.seed)
    model = LlamaForCausalLM.from_pretrained(str(folder), torch_dtype=torch.float32) if folder else LlamaForCausalLM(mc)
    # Pipelined, the last stage's criterion computes the fused loss (set up after boost); otherwise the forward does.
    fused = cfg.model.fused_ce and (pipelined or enable_fused_ce(model, cfg.model.fused_ce_impl))
    if t.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    num_params = sum(q.numel() for q in model.parameters())
    optimizer = torch.optim.AdamW(_param_groups(model, t.weight_decay), lr=t.lr, betas=tuple(t.betas), eps=t.eps)
    plugin = build_plugin(p, t, needs_unused=any(s.config.freeze != "full" for s in stages))
    amp = {"bf16": "bf16", "fp16": "fp16"}.get(t.precision) if p.name == "ddp" else None
    booster = Booster(plugin=plugin, mixed_precision=amp)
    model, optimizer, *_ = booster.boost(model, optimizer)
    dp_size_actual, dp_rank = data_parallel(plugin)
    if dp_size_actual != dp_size:
        raise GraftError(f"data-parallel size {dp_size_actual} differs from the expected {dp_size}")
    dp_group = getattr(plugin, "dp_group", None)
    pp_group = plugin.pp_group if pipelined else None
    head = defer_lm_head(model.unwrap()) if fused and pipelined and plugin.stage_manager.is_last_stage() else None
    pipe_size = pipeline_microbatches(p, t)[0] if pipelined else 0

    step, tokens_seen = 0, {s.config.name: 0 for s in stages}
    position = 0
    if resume_from is not None:
        state = ckpt.load(booster, model, optimizer, resume_from)
        step, tokens_seen, position = state["step"], state["tokens_seen"], state["sample_position"]
        if rank == 0:
            log.info("resumed from %s (step %d, stage %s)", resume_from, step, state["stage_name"])
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    metrics = MetricsLog(out / "metrics.jsonl", step, enabled=rank == 0 and not t.benchmark,
                         cfg=cfg if cfg.logger.wandb_mode != "disabled" else None, raw=raw)
    config_yaml = OmegaConf.to_yaml(raw, resolve=True)
    peak = peak_flops(t.peak_flops)
    fpt = flops_per_token(mc, num_params, manifest.max_length)
    collate = D.Collator(manifest.categories, t.doc_mask, MASK_DTYPES[t.precision])
    ncat = len(manifest.categories)

    # ---- train ------------------------------------------------------------------------------------------------
    from tqdm import tqdm

    bar = tqdm(total=end_step, initial=step, disable=rank != 0, desc="train", unit="step", dynamic_ncols=True)
    current, it, bucket, record = None, None, -1, None
    timed_tokens, timed_time, timed_slots = 0, 0.0, 0
    last_saved = step if resume_from is not None else -1
    while step < end_step:
        stage, _ = schedule.lookup(step)
        if stage is not current:
            if current is not None:
                position = 0
            trainable = apply_freeze(model.unwrap(), stage.config.freeze)
            if pp_group is not None:  # each pipeline stage holds (and counts) only its own layers
                held = torch.tensor(trainable, dtype=torch.int64)
                dist.all_reduce(held, group=pp_group)
                trainable = int(held)
            n_steps = min(stage.end, end_step) - step
            dataset = D.RankSlice(streams[stage.index], position, n_steps, t.micro_batch_size, t.grad_accum,
                                  dp_size, dp_rank)
            # Pipelined, one loader batch is a whole step (the schedule splits it into micro-batches).
            loader = torch.utils.data.DataLoader(dataset, shuffle=False, collate_fn=collate,
                                                 batch_size=t.micro_batch_size * (t.grad_accum if pipelined else 1),
                                                 num_workers=t.num_workers)
            it, current = iter(loader), stage
        lr = schedule.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        sums = torch.zeros(2 + 2 * ncat + 1, dtype=torch.float64)  # loss sum, count, per-category, real tokens
        if pipelined:
            batch = next(it)
            criterion = PipelineLoss(batch, pipe_size, sums, manifest.pad_token_id, ncat, head, cfg.model.fused_ce_impl)
            inputs = {k: batch[k] for k in ("input_ids", "position_ids", "attention_mask") if k in batch}
            booster.execute_pipeline(iter([inputs]), model, criterion, optimizer, return_loss=False)
            bucket = batch["buckets"][-1]
        else:
            for _ in range(t.grad_accum):
                batch = next(it)
                loss, per_token, count = forward_loss(model, batch, fused)
                booster.backward(loss / t.grad_accum, optimizer)
                accumulate(sums, loss, per_token, count, batch, manifest.pad_token_id, ncat)
                bucket = batch["buckets"][-1]
        if p.name == "ddp":
            grad_norm = float(optimizer.clip_grad_by_norm(t.grad_clip if t.grad_clip > 0 else math.inf))
        optimizer.step()
        if p.name != "ddp":
            grad_norm = optimizer.get_grad_norm()
            grad_norm = float(grad_norm) if grad_norm is not None else float("nan")
        optimizer.zero_grad()
        dist.all_reduce(sums, group=dp_group)
        if pp_group is not None:  # only the last stage computed the loss; the others add zeros
            dist.all_reduce(sums, group=pp_group)
        dt = time.perf_counter() - t0
        step += 1
        position += global_batch
        tokens_seen[stage.config.name] += int(sums[-1])
        if step > t.benchmark_warmup or not t.benchmark:
            timed_tokens, timed_time, timed_slots = timed_tokens + int(sums[-1]), timed_time + dt, \
                timed_slots + global_batch * manifest.max_length
        record = {"step": step, "stage": stage.config.name, "bucket": bucket, "lr": lr,
                  "loss": float(sums[0] / max(sums[1], 1)), "grad_norm": grad_norm, "tokens": int(sums[-1]),
                  "tokens_per_s": float(sums[-1]) / dt, "step_time_s": dt, "trainable_params": trainable,
                  "peak_memory_gb": peak_memory_gb(), "tokens_seen": dict(tokens_seen)}
        if peak:
            record["mfu"] = fpt * global_batch * manifest.max_length / dt / (peak * world)
        for c, name in enumerate(manifest.categories):
            if sums[2 + ncat + c] > 0:
                record[f"loss/{name}"] = float(sums[2 + c] / sums[2 + ncat + c])
        if step % t.log_every == 0 or step == end_step:
            metrics.log(record)
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.4f}", stage=stage.config.name)
        ckpt.fault("kill_after_step", step)
        if not t.benchmark and ((t.checkpoint_every and step % t.checkpoint_every == 0) or step == end_step):
            next_stage, _ = schedule.lookup(step)
            state = {"step": step, "stage": next_stage.index, "stage_name": next_stage.config.name,
                     "sample_position": position if next_stage is stage else 0, "bucket": bucket,
                     "tokens_seen": tokens_seen, "fingerprint": fingerprint, "lr": lr}
            ckpt.save(booster, model, optimizer, root, step, state, config_yaml, t.keep_last)
            last_saved = step
    bar.close()

    # ---- outputs ------------------------------------------------------------------------------------------------
    summary = {"steps": step, "total_steps": schedule.total_steps, "completed": step >= schedule.total_steps,
               "plugin": p.name, "world_size": world, "dp_size": dp_size, "global_batch": global_batch,
               "mesh": {"dp": dp_size, **mesh},
               "num_params": num_params, "tokens_seen": tokens_seen, "fused_ce": fused, "doc_mask": t.doc_mask,
               "stages": [{"name": s.config.name, "start": s.start, "steps": s.steps, "packs_per_pass": s.num_packs,
                           "freeze": s.config.freeze} for s in stages],
               "tokens_per_s": timed_tokens / timed_time if timed_time else None,
               "mfu": (fpt * timed_slots / timed_time / (peak * world)) if (peak and timed_time) else None,
               "flops_per_token": fpt, "peak_flops_per_device": peak, "peak_memory_gb": peak_memory_gb(),
               "last_checkpoint": last_saved, "final_loss": record["loss"] if record else None}
    if not t.benchmark and step > 0:
        tmp = out / ".final.tmp"
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        dist.barrier()
        booster.save_model(model, str(tmp), shard=True, use_safetensors=True)
        dist.barrier()
        if rank == 0:
            for name in TOKENIZER_FILES:
                if folder is not None and (folder / name).is_file():
                    shutil.copy2(folder / name, tmp / name)
            shutil.rmtree(out / "final", ignore_errors=True)
            os.replace(tmp, out / "final")
    if rank == 0:
        write_run_files(out, raw, summary)
        metrics.finish(summary)
        print(json.dumps({k: summary[k] for k in ("steps", "tokens_per_s", "mfu", "final_loss")}), flush=True)
    dist.barrier()
    dist.destroy_process_group()
    return summary
