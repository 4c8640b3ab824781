"""Real 2-process gloo runs through the CLI: exact resume after SIGKILL (ddp), zero2 + fused loss, hybrid tp=2,
ZeRO-2 checkpoints while parameters are frozen. Pipeline and sequence parallelism: test_parallel_mesh.py."""

import json
import shutil

import pytest
import torch
from train_helpers import DDP_ARGS as COMMON
from train_helpers import launch
from train_helpers import metrics as _metrics
from train_helpers import ok as _ok

pytestmark = pytest.mark.slow


def test_ddp_sigkill_and_resume_is_bit_exact(run_root, uninterrupted, tmp_path):
    out = tmp_path / "train"
    args = [f"run_root={run_root}", f"out_dir={out}", *COMMON]
    # SIGKILL rank 0 while checkpoint 6 is being written (after 2 and 4 completed, across the stage change at 4).
    killed = launch(args, nproc=2, env={"GRAFT_FAULT": "kill_in_checkpoint:6"})
    assert killed.returncode != 0
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert "step_00000004" in ckpts and "step_00000006" not in ckpts and ".tmp-step_00000006" in ckpts
    _ok(launch(args, nproc=2))  # resumes from step 4 automatically
    a, b = _metrics(uninterrupted), _metrics(out)
    assert [r["step"] for r in b] == list(range(1, 9))
    for ra, rb in zip(a, b, strict=True):
        assert (ra["loss"], ra["grad_norm"], ra["lr"], ra["stage"], ra["bucket"]) == \
               (rb["loss"], rb["grad_norm"], rb["lr"], rb["stage"], rb["bucket"])
        assert ra["tokens_seen"] == rb["tokens_seen"]
    from transformers import AutoModelForCausalLM

    ma = AutoModelForCausalLM.from_pretrained(uninterrupted / "final").state_dict()
    mb = AutoModelForCausalLM.from_pretrained(out / "final").state_dict()
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    # Stage 1 trains embeddings and lm_head only; stage 2 everything.
    assert a[0]["stage"] == "embed_warmup" and a[0]["trainable_params"] == 2 * 256 * 32
    assert a[-1]["stage"] == "full" and a[-1]["trainable_params"] > a[0]["trainable_params"]
    assert {"loss/zh", "loss/en"} <= set(a[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["tokens_seen"]["embed_warmup"] > 0
    assert len(list((out / "checkpoints").glob("step_*"))) == 2  # keep_last


def test_zero2_fused_and_hybrid_tp2(run_root, uninterrupted, tmp_path):
    ref = _metrics(uninterrupted)
    out = tmp_path / "zero2"
    _ok(launch([f"run_root={run_root}", f"out_dir={out}", "plugin=zero2", "model.fused_ce=true",
                "model.fused_ce_impl=chunked", "schedule=colossal_3stage", "train.max_steps=3", "train.checkpoint_every=2"], nproc=2))
    z = _metrics(out)
    assert len(z) == 3 and json.loads((out / "summary.json").read_text())["fused_ce"] is True
    assert z[0]["loss"] == pytest.approx(ref[0]["loss"], rel=1e-5)  # bucket 0 first, same weights as ddp: same loss
    assert (out / "checkpoints" / "step_00000002" / "optimizer").is_dir() and (out / "final" / "config.json").exists()
    out = tmp_path / "hybrid"
    shutil.rmtree(out, ignore_errors=True)
    _ok(launch([f"run_root={run_root}", f"out_dir={out}", "plugin=hybrid", *COMMON[:1], "train.max_steps=3",
                "train.checkpoint_every=2"], nproc=2))
    h = _metrics(out)
    # tp=2 on 2 processes: one data-parallel rank, so the global batch is half of ddp's; the first pack is shared.
    assert len(h) == 3 and all(r["loss"] == r["loss"] for r in h)
    assert json.loads((out / "summary.json").read_text())["dp_size"] == 1
    assert (out / "checkpoints" / "step_00000002" / "model").is_dir()


def test_zero2_checkpoints_frozen_stage_and_resumes(run_root, uninterrupted, tmp_path):
    """ZeRO-2 saves a checkpoint while embeddings_only freezes the layers (they have no optimizer state yet),
    resumes from it across the stage change, and trains as ddp does (same global batch)."""
    out = tmp_path / "zero2"
    args = [f"run_root={run_root}", f"out_dir={out}", *COMMON, "plugin=zero2"]
    assert launch(args, nproc=2, env={"GRAFT_FAULT": "kill_after_step:5"}).returncode != 0
    assert (out / "checkpoints" / "step_00000004" / "optimizer").is_dir()
    _ok(launch(args, nproc=2))  # resumes from step 4, still in the frozen stage's checkpoint
    ref, got = _metrics(uninterrupted), _metrics(out)
    assert [r["step"] for r in got] == list(range(1, 9)) and got[-1]["stage"] == "full"
    for a, b in zip(ref, got, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6) and b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)
        assert a["trainable_params"] == b["trainable_params"]
