"""Real 2-process gloo runs through the CLI: exact resume after SIGKILL (ddp), zero2 + fused loss, hybrid tp=2,
hybrid pp=2 (pipeline) and sp=2 (sequence parallel) against one process."""

import json
import shutil

import pytest
import torch
from train_helpers import launch

pytestmark = pytest.mark.slow
COMMON = ["schedule=embed_warmup_then_full", "train.checkpoint_every=2", "train.max_steps=8", "train.keep_last=2"]


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _ok(r):
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.fixture(scope="module")
def uninterrupted(run_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_full") / "train"
    _ok(launch([f"run_root={run_root}", f"out_dir={out}", *COMMON], nproc=2))
    return out


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


def test_hybrid_pp2_and_sp2_match_one_process(run_root, tmp_path):
    """Two pipeline stages (1F1B, 2 micro-batches per step) compute what one process accumulating 2 micro-batches
    computes, across the stage change that unfreezes the layers, and through a SIGKILL + resume."""
    common = [f"run_root={run_root}", *COMMON, "train.grad_accum=2"]
    ref_out, out = tmp_path / "one", tmp_path / "pp2"
    _ok(launch([*common, f"out_dir={ref_out}"], nproc=1))
    pp = [*common, f"out_dir={out}", "plugin=hybrid", "plugin.tp_size=1", "plugin.pp_size=2"]
    assert launch(pp, nproc=2, env={"GRAFT_FAULT": "kill_after_step:5"}).returncode != 0
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_00000002", "step_00000004"]
    _ok(launch(pp, nproc=2))  # resumes from step 4
    ref, got = _metrics(ref_out), _metrics(out)
    assert [r["step"] for r in got] == list(range(1, 9))
    for a, b in zip(ref, got, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6) and b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)
        assert (a["stage"], a["bucket"], a["trainable_params"], a["tokens_seen"]) == \
               (b["stage"], b["bucket"], b["trainable_params"], b["tokens_seen"])
        assert b["loss/zh"] == pytest.approx(a["loss/zh"], rel=1e-6)
    assert got[0]["trainable_params"] < got[-1]["trainable_params"]  # both stages' parameters counted
    from transformers import AutoModelForCausalLM

    ma = AutoModelForCausalLM.from_pretrained(ref_out / "final").state_dict()
    mb = AutoModelForCausalLM.from_pretrained(out / "final").state_dict()
    assert ma.keys() == mb.keys() and all(torch.allclose(ma[k], mb[k], rtol=1e-5, atol=1e-6) for k in ma)
    # Sequence parallelism (all_to_all, sp=2) on the same one data-parallel rank: the same training again.
    sp_out = tmp_path / "sp2"
    _ok(launch([*common, f"out_dir={sp_out}", "train.max_steps=4", "plugin=hybrid", "plugin.tp_size=1",
                "plugin.sp_size=2", "plugin.sp_mode=all_to_all"], nproc=2))
    sp = _metrics(sp_out)
    assert len(sp) == 4
    for a, b in zip(ref, sp, strict=False):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6) and b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)


def test_hybrid_interleaved_pipeline_matches_one_process(run_root, tmp_path):
    """pp_style=interleaved: 2 stages x 2 model chunks of a 4-layer model, against one process."""
    from train_helpers import tiny_model

    root = tmp_path / "root"
    tiny_model(root / "model", layers=4)
    (root / "data").symlink_to(run_root / "data")
    common = [f"run_root={root}", "schedule=embed_warmup_then_full", "train.max_steps=5", "train.checkpoint_every=0",
              "train.grad_accum=2"]
    _ok(launch([*common, f"out_dir={tmp_path / 'one'}"], nproc=1))
    _ok(launch([*common, f"out_dir={tmp_path / 'pp'}", "plugin=hybrid", "plugin.tp_size=1", "plugin.pp_size=2",
                "plugin.pp_style=interleaved", "plugin.num_model_chunks=2"], nproc=2))
    ref, got = _metrics(tmp_path / "one"), _metrics(tmp_path / "pp")
    assert len(got) == 5 and got[-1]["stage"] == "full"
    for a, b in zip(ref, got, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6) and a["trainable_params"] == b["trainable_params"]
