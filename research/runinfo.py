"""What a run records about itself: resolved config, library versions, hardware (written beside outputs)."""

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

PACKAGES = ("torch", "transformers", "tokenizers", "sentencepiece", "colossalai", "triton", "hydra-core",
            "omegaconf", "datasets", "pyarrow", "wandb", "numpy")


def versions(extra: tuple[str, ...] = ()) -> dict:
    out = {"python": platform.python_version()}
    for name in (*PACKAGES, *extra):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parent.parent
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def hardware() -> dict:
    info = {"platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpus"] = torch.cuda.device_count()
    except ImportError:
        pass
    return info


def run_info() -> dict:
    return {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "versions": versions(),
        "hardware": hardware(),
    }


def write_run_files(out_dir: Path, raw_cfg: DictConfig, summary: dict) -> None:
    """config.yaml (resolved), summary.json (key figures + run info)."""
    out_dir = Path(out_dir)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(raw_cfg, resolve=True), encoding="utf-8")
    payload = dict(summary)
    payload["run"] = run_info()
    write_json(out_dir / "summary.json", payload)


def write_json(path: Path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
