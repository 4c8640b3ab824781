"""Cache keys: a stage's key is a hash of the resolved config that decides its output and of its inputs' keys.

Paths to the outputs of stages the pipeline runs are replaced by placeholders (`@tokenizer`, `@inputs`, ...) before
the config is resolved, so a key does not depend on where a run lives: two run roots with the same tokenizer
config share one tokenizer. Paths to inputs the pipeline does not build are hashed as absolute paths (their
content is not read: change files in place and the key stays; use pipeline.rerun or pipeline.reuse=false).
"""

import copy
import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from research.orchestrate.stage_specs import STAGES, Stage

KEY_CHARS = 16


def external_dir(raw: DictConfig, stage: Stage) -> str:
    """Where a stage the pipeline does not run has its output: its `paths` entry, absolute."""
    return str(Path(OmegaConf.select(raw, f"paths.{stage.path_key}")).resolve())


def path_overrides(stage: Stage, dirs: dict[str, str], running: list[str]) -> dict[str, str]:
    """Config values a stage gets from the pipeline: every stage's folder, its own out_dir, the model to evaluate."""
    out = {f"paths.{s.path_key}": dirs[s.name] for s in STAGES.values()}
    out["out_dir"] = dirs[stage.name]
    if stage.name == "evaluate" and "train" in running:
        out["eval.model_path"] = f"{dirs['train']}/final"
    return out


def _drop(tree: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        tree = tree.get(p, {}) if isinstance(tree, dict) else {}
    if isinstance(tree, dict):
        tree.pop(leaf, None)


def material(raw: DictConfig, stage: Stage, running: list[str], keys: dict[str, str], launch: dict) -> dict:
    """What a stage's key hashes: its config subtrees resolved with placeholder paths, its inputs, its launch."""
    placeholders = {s.name: (f"@{s.path_key}" if s.name in running else external_dir(raw, s)) for s in STAGES.values()}
    cfg = copy.deepcopy(raw)
    for key, value in path_overrides(stage, placeholders, running).items():
        OmegaConf.update(cfg, key, value, merge=False)
    config = {}
    for key in stage.config:
        node = OmegaConf.select(cfg, key, throw_on_missing=True)
        config[key] = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    for dotted in stage.ignore:
        top = next((k for k in stage.config if dotted.startswith(k + ".")), None)
        if top is not None:
            _drop(config[top], dotted[len(top) + 1:])
    reads = {s: (keys[s] if s in running else placeholders[s]) for s in stage.reads}
    return {"stage": stage.name, "config": config, "reads": reads, "launch": launch}


def digest(obj: dict) -> str:
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_CHARS]
