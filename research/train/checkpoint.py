"""Resumable checkpoints: model and optimizer through the Booster (sharded plugins work), plus everything else a
run needs to continue bit-exactly: step, stage, sampler position, RNG states of every rank, the resolved config.

Layout: `<out_dir>/checkpoints/step_{step:08d}/` with model/ (HF safetensors shards + config.json), optimizer/,
rng/rank_{r}.json + rank_{r}.safetensors, config.yaml and state.json. A checkpoint is written into a hidden
temporary folder and renamed when complete, so a kill mid-write leaves the previous checkpoint as the latest.
No pickle is ever read back: RNG states are JSON and safetensors; colossalai's optimizer files are read with
torch.load's default weights_only=True (torch >= 2.6).
"""

import json
import os
import random
import re
import shutil
import signal
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from research.errors import GraftError

_NAME = re.compile(r"^step_(\d{8})$")
FAULT_ENV = "GRAFT_FAULT"
"""Fault injection for tests: `kill_after_step:N` or `kill_in_checkpoint:N` SIGKILLs rank 0 there."""


def fault(kind: str, step: int) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    if spec == f"{kind}:{step}" and dist.get_rank() == 0:
        os.kill(os.getpid(), signal.SIGKILL)


def checkpoints(root: Path) -> list:
    """Complete checkpoints under `root`, oldest first (temporary folders are never listed)."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: p.name)


def latest(root: Path) -> Path | None:
    found = checkpoints(root)
    return found[-1] if found else None


def read_state(path: Path) -> dict:
    return json.loads((path / "state.json").read_text(encoding="utf-8"))


def check_compatible(path: Path, saved: dict, current: dict, prefix: str = "") -> None:
    """One-line GraftError at the first field where the checkpoint's fingerprint differs from this run's."""
    for key, now in current.items():
        was = saved.get(key)
        if isinstance(now, dict) and isinstance(was, dict):
            check_compatible(path, was, now, f"{prefix}{key}.")
        elif was != now:
            raise GraftError(f"checkpoint {path} is incompatible: {prefix}{key} was {was!r}, this run has {now!r} "
                             "(use another out_dir, or train.resume=false to start over)")


def _rng_state() -> tuple:
    py = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    meta = {"python": [py[0], list(py[1]), py[2]],
            "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state()
    return meta, tensors


def _set_rng_state(meta: dict, tensors: dict) -> None:
    v, keys, gauss = meta["python"]
    random.setstate((v, tuple(keys), gauss))
    kind, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])


def save(booster, model, optimizer, root: Path, step: int, state: dict, config_yaml: str, keep_last: int) -> Path:
    """Write checkpoint `step` atomically (all ranks call this); keep the newest `keep_last`."""
    rank = dist.get_rank()
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp-step_{step:08d}"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-step_*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    dist.barrier()
    booster.save_model(model, str(tmp / "model"), shard=True, use_safetensors=True)
    booster.save_optimizer(optimizer, str(tmp / "optimizer"), shard=True)
    meta, tensors = _rng_state()
    (tmp / "rng").mkdir(exist_ok=True)
    (tmp / "rng" / f"rank_{rank}.json").write_text(json.dumps(meta), encoding="utf-8")
    save_file(tensors, str(tmp / "rng" / f"rank_{rank}.safetensors"))
    dist.barrier()
    if rank == 0:
        (tmp / "config.yaml").write_text(config_yaml, encoding="utf-8")
        fault("kill_in_checkpoint", step)
        (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return final


def load(booster, model, optimizer, path: Path) -> dict:
    """Restore model, optimizer and this rank's RNG states from `path`; return its state.json."""
    rank = dist.get_rank()
    booster.load_model(model, str(path / "model"))
    booster.load_optimizer(optimizer, str(path / "optimizer"))
    rng = path / "rng" / f"rank_{rank}.json"
    if not rng.is_file():
        raise GraftError(f"checkpoint {path} has no RNG state for rank {rank} (saved with fewer processes?)")
    _set_rng_state(json.loads(rng.read_text(encoding="utf-8")), load_file(str(path / "rng" / f"rank_{rank}.safetensors")))
    return read_state(path)
