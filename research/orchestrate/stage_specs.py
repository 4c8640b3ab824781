"""The recipe's stages as data: which app runs, where it writes, what config and which earlier stages it depends on."""

from dataclasses import dataclass

from research.config.pipeline import STAGE_ORDER

_FUSED = ("model.fused_ce", "model.fused_ce_impl")


@dataclass(frozen=True)
class Stage:
    name: str
    """Pipeline name, also the app: `python -m research.<name>`."""
    path_key: str
    """Its entry in `paths` (where later stages find its output)."""
    config: tuple[str, ...]
    """Config subtrees (dotted keys) whose resolved values decide its output: part of its cache key."""
    reads: tuple[str, ...]
    """Earlier stages whose outputs it reads: their keys are part of its key."""
    ignore: tuple[str, ...] = ()
    """Dotted keys inside `config` that do not change its output."""
    done_marker: tuple[str, ...] = ("summary.json",)
    """Files whose presence means the stage's folder is complete."""


STAGES: dict[str, Stage] = {s.name: s for s in (
    # The base model is built from `model` (less its path, which points at this stage's own output) and pre-trained.
    Stage("demo_inputs", "inputs", ("demo", "model", "seed"), (), ignore=("model.path", *_FUSED)),
    Stage("expand_vocab", "tokenizer", ("tokenizer",), ("demo_inputs",)),
    Stage("init_model", "model", ("init", "model"), ("demo_inputs", "expand_vocab"), ignore=_FUSED),
    Stage("prepare_data", "data", ("data", "buckets"), ("demo_inputs", "expand_vocab")),
    Stage("train", "train", ("schedule", "plugin", "train", *_FUSED, "seed"), ("init_model", "prepare_data"),
          done_marker=("summary.json", "final/config.json")),
    Stage("evaluate", "eval", ("eval",), ("demo_inputs", "init_model", "train")),
)}
assert tuple(STAGES) == STAGE_ORDER
