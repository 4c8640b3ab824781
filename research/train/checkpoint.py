"""Resumable checkpoints: model and optimizer through the Booster (sharded plugins work), plus everything else a
run needs to continue bit-exactly: step, stage, sampler position, RNG states of every rank, the resolved config.

Layout: `<out_dir>/checkpoints/step_{step:08d}/` with model/ (HF safetensors shards + config.json), optimizer/,
rng/rank_{r}.json + rank_{r}.safetensors, config.yaml and state.json. A checkpoint is written into a hidden
temporary folder and renamed when complete, so a kill mid-write leaves the previous checkpoint as the latest.

A checkpoint resumes only the run that wrote it: state.json holds the run's `fingerprint` (what the plugins need
to load it: model shape, plugin, world size, global batch, stages) and its `run` record (`run_record`: the resolved
config less RESUMABLE, and the data's identity in place of its path); a resume under another value of either is
a one-line error listing what differs.
No pickle is ever read back: RNG states are JSON and safetensors; colossalai's optimizer files are read with
torch.load's default weights_only=True (torch >= 2.6).
"""

import fnmatch
import hashlib
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
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file

from research.errors import GraftError

_NAME = re.compile(r"^step_(\d{8})$")
FAULT_ENV = "GRAFT_FAULT"
"""Fault injection for tests: `kill_after_step:N` or `kill_in_checkpoint:N` SIGKILLs rank 0 there."""

RESUMABLE = (
    # where things are: the run moves, the data is compared by its identity (DATA_KEY), not its path
    "run_root", "out_dir", "paths.*", "model.path", "overwrite", "hydra.*",
    # how the run is watched and how far it goes, not what it computes
    "logger.*", "train.max_steps", "train.log_every", "train.checkpoint_every", "train.keep_last",
    "train.num_workers", "train.resume", "train.peak_flops",
    # the other apps' groups: training sees their work only through paths.data and paths.model
    "tokenizer.*", "init.*", "data.*", "buckets.*", "eval.*", "demo.*", "pipeline.*",
)
"""The config keys that may change when a run resumes (fnmatch patterns over dotted keys, a list item being
`key[i]`); every other key of the resolved config defines the run. The one list of them (docs/apps/train.md
repeats it)."""
DATA_KEY = "paths.data manifest"
"""The run record's entry for the training data: data_identity of the manifest at paths.data (compared although
paths.* is resumable)."""
_UNSET = object()


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


def resumable(key: str) -> bool:
    return key != DATA_KEY and any(fnmatch.fnmatchcase(key, pattern) for pattern in RESUMABLE)


def data_identity(manifest: dict) -> str:
    """What the data is, not where it is: sha256 (16 hex digits) of its manifest less `config`, `versions` and
    `hashes.inputs` (the places and tools it was made with); what stays describes the buckets and, for
    prepare_data's output, holds the hash of every bucket file (`hashes.outputs`). A moved copy keeps it."""
    body = {k: v for k, v in manifest.items() if k not in ("config", "versions")}
    if isinstance(body.get("hashes"), dict):
        body["hashes"] = {k: v for k, v in body["hashes"].items() if k != "inputs"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out if node or not prefix else {prefix: {}}
    if isinstance(node, list):
        out = {}
        for i, v in enumerate(node):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out if node else {prefix: []}
    return {prefix: node}


def run_record(raw: DictConfig, manifest: dict) -> dict:
    """What defines a run, as checkpoints record it: the resolved config flattened to dotted keys, less the
    RESUMABLE ones, and the identity of its data (DATA_KEY)."""
    flat = _flatten(OmegaConf.to_container(raw, resolve=True))
    record = {k: v for k, v in flat.items() if not resumable(k)}
    record[DATA_KEY] = data_identity(manifest)
    return record


def check_same_run(path: Path, saved: dict | None, current: dict) -> None:
    """One-line GraftError listing every key (old -> new) where this run's record differs from the one checkpoint
    `path` was written under. A checkpoint without a record (written before they were kept) is not checked."""
    if saved is None:
        return
    keys = [k for k in [*current, *(k for k in saved if k not in current)]
            if not resumable(k) and saved.get(k, _UNSET) != current.get(k, _UNSET)]
    if keys:
        diff = ", ".join(f"{k} {_show(saved, k)} -> {_show(current, k)}" for k in keys)
        raise GraftError(f"checkpoint {path} was written by another configuration: {diff} (rerun with its values, "
                         "train.resume=false to start over, or another out_dir)")


def _show(record: dict, key: str) -> str:
    value = record.get(key, _UNSET)
    return "<unset>" if value is _UNSET else json.dumps(value, ensure_ascii=False)


def step_dir(root: Path, step: int) -> Path:
    return root / f"step_{step:08d}"


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
    final = step_dir(root, step)
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
