"""Helpers shared by the train tests: a tiny model, a free port, a CLI launcher, its metrics."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VOCAB, MAX_LEN = 256, 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_model(path: Path, vocab: int = VOCAB, seed: int = 0, layers: int = 2) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128)
    LlamaForCausalLM(cfg).save_pretrained(path, safe_serialization=True)
    return path


DDP_ARGS = ["schedule=embed_warmup_then_full", "train.checkpoint_every=2", "train.max_steps=8", "train.keep_last=2"]
"""The 8-step, 2-stage run of the `uninterrupted` fixture (conftest.py), which resume tests compare with."""


def _command(overrides: list, nproc: int, env: dict | None) -> tuple:
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_port", str(free_port()), "-m", "research.train"]
    else:
        cmd = [sys.executable, "-m", "research.train"]
    full_env = {**{k: v for k, v in os.environ.items() if k != "GRAFT_FAULT"}, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", **(env or {})}
    return cmd + ["logger=none", *overrides], full_env


def launch(overrides: list, nproc: int = 1, env: dict | None = None, timeout: int = 600):
    """Run `python -m research.train` (under torchrun when nproc > 1); return the CompletedProcess.

    A run still going after `timeout` seconds fails the test with every worker's stacks (SIGUSR1 makes each print
    them: research/cli.py), so a hang says where it hangs."""
    proc = start(overrides, nproc, env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = _stacks_then_kill(proc)
        raise AssertionError(f"{' '.join(overrides)}: still running after {timeout} s; stacks:\n{err[-12000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _stacks_then_kill(proc: subprocess.Popen) -> tuple:
    import psutil

    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in family[1:]:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGUSR1)
    time.sleep(3)
    for p in family:
        with contextlib.suppress(psutil.Error):
            p.kill()
    return proc.communicate()


def start(overrides: list, nproc: int = 1, env: dict | None = None) -> subprocess.Popen:
    """Start what `launch` runs, in a process group of its own (signal it with os.killpg(proc.pid, ...))."""
    cmd, full_env = _command(overrides, nproc, env)
    return subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def metrics(out: Path) -> list:
    """The records of a run's metrics.jsonl."""
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def ok(r) -> None:
    assert r.returncode == 0, r.stderr[-3000:]
