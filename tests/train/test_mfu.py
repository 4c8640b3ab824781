"""MFU in research.train: FLOPs per token against a hand computation, the peak FLOP/s table lookup and its
override, and the MFU a benchmark-mode run reports (on CPU, with train.peak_flops set)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from research.train import step_metrics
from research.train.step_metrics import flops_per_token, peak_flops

ROOT = Path(__file__).resolve().parents[2]
# vocabulary 100, hidden 8, intermediate 16, 2 layers, 2 heads (2 key/value heads), untied lm_head
SMALL = {"vocab_size": 100, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2,
         "num_attention_heads": 2, "num_key_value_heads": 2}
# embeddings 100*8 + lm_head 100*8 + 2 layers x (q, k, v, o 4*8*8 + gate, up, down 3*8*16 + 2 norms 2*8) + norm 8
PARAMS = 800 + 800 + 2 * (256 + 384 + 16) + 8  # 2920
SEQ = 16
# PaLM: 6 x (parameters less the embedding lookup) + 12 x layers x hidden x sequence length
FLOPS = 6 * (2920 - 800) + 12 * 2 * 8 * 16  # 12720 + 3072 = 15792


def test_flops_per_token_by_hand():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(**SMALL, max_position_embeddings=64)
    model = LlamaForCausalLM(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert n == PARAMS == 2920
    assert flops_per_token(cfg, n, SEQ) == FLOPS == 15792
    # MFU of a step by hand: 4 packs of 16 slots in 0.5 s on 2 devices of 1 MFLOP/s peak.
    assert flops_per_token(cfg, n, SEQ) * 4 * SEQ / 0.5 / (1e6 * 2) == pytest.approx(1.010688)


@pytest.mark.parametrize("name, peak", [("NVIDIA H200", 989e12), ("NVIDIA H100 80GB HBM3", 989e12),
                                        ("NVIDIA A100-SXM4-80GB", 312e12), ("Some Future Accelerator", None)])
def test_peak_flops_lookup(monkeypatch, name, peak):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: name)
    assert peak_flops(0.0) == peak  # bf16 dense; an unknown GPU: None (MFU not reported)
    assert peak_flops(1.5e15) == 1.5e15  # train.peak_flops wins over the table
    assert step_metrics.PEAK_FLOPS["H200"] == 989e12


def test_no_peak_without_a_gpu_unless_configured(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert peak_flops(0.0) is None
    assert peak_flops(2e12) == 2e12


def test_benchmark_run_reports_mfu_from_the_configured_peak(tmp_path):
    """No warm-up, so every step is timed: mfu / tokens_per_s = flops/token x slots / (tokens x peak x world)."""
    steps, peak = 2, 1e12
    cmd = [sys.executable, "-m", "research.train", "logger=none", f"run_root={tmp_path}", "train.benchmark=true",
           f"train.benchmark_steps={steps}", "train.benchmark_warmup=0", f"train.benchmark_seq_len={SEQ}",
           f"train.peak_flops={peak}", *(f"model.{k}={v}" for k, v in SMALL.items())]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    env.pop("GRAFT_FAULT", None)
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / "train" / "summary.json").read_text())
    assert (s["num_params"], s["flops_per_token"], s["peak_flops_per_device"]) == (PARAMS, FLOPS, peak)
    slots = s["global_batch"] * SEQ * steps  # padding included: the packs' full length is computed
    tokens = s["tokens_seen"]["benchmark"]  # real tokens only, what tokens_per_s counts
    assert 0 < tokens <= slots
    assert s["mfu"] == pytest.approx(FLOPS * slots / tokens * s["tokens_per_s"] / (peak * s["world_size"]), rel=1e-9)
