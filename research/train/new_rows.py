"""The `new_rows_only` freeze policy: only the rows of the new tokens train, in the input embeddings and lm_head.

While a run has a `new_rows_only` stage, each of those matrices is held as two parameters, `base_rows` (the ids
below the base tokenizer's size) and `new_rows` (the rest), and the model reads their concatenation. A
`new_rows_only` stage sets requires_grad on `new_rows` only: `base_rows` get no gradient, so AdamW neither decays
nor moves them and creates no state for them, and they stay bit-identical. Stages that train more (`full`,
`embeddings_only`) train both parts; optimizer state follows each part from stage to stage. Checkpoints hold the
two parts (a resume rebuilds the same split); the final model is merged back into the family's own modules, so
`final/` is an ordinary HF folder.

The base size comes from init_model's summary.json beside the model (old_size < new_size: the model was expanded).
A tied model keeps one split matrix for both ends.
"""

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from research.errors import GraftError

POLICY = "new_rows_only"
PLUGINS = ("ddp", "zero2", "zero2_cpu")
"""Plugins under which the split is tested (the others shard or wrap the embeddings themselves)."""


class SplitRows(torch.nn.Module):
    def __init__(self, weight: torch.Tensor, base: int):
        super().__init__()
        self.base_rows = torch.nn.Parameter(weight.detach()[:base].clone())
        self.new_rows = torch.nn.Parameter(weight.detach()[base:].clone())

    def full(self) -> torch.Tensor:
        return torch.cat([self.base_rows, self.new_rows])


class SplitEmbedding(torch.nn.Module):
    """An nn.Embedding read from SplitRows; `weight` is the concatenation (what HF code and the fused loss read)."""

    def __init__(self, emb: torch.nn.Embedding, rows: SplitRows):
        super().__init__()
        self.rows, self.padding_idx = rows, emb.padding_idx
        self.num_embeddings, self.embedding_dim = emb.num_embeddings, emb.embedding_dim

    @property
    def weight(self) -> torch.Tensor:
        return self.rows.full()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight, self.padding_idx)


class SplitHead(torch.nn.Module):
    """A bias-free nn.Linear (lm_head) read from SplitRows."""

    bias = None

    def __init__(self, rows: SplitRows):
        super().__init__()
        self.rows = rows

    @property
    def weight(self) -> torch.Tensor:
        return self.rows.full()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden, self.weight)


def base_size(folder: Path | None, key: str) -> int:
    """The base tokenizer's size of an expanded model folder (init_model's summary.json); a one-line error naming
    `key` (the stage's freeze) when the model was not expanded."""
    summary = None if folder is None else folder / "summary.json"
    info = {}
    if summary is not None and summary.is_file():
        try:
            info = json.loads(summary.read_text(encoding="utf-8"))
        except ValueError:
            info = {}
    old, new = info.get("old_size"), info.get("new_size")
    if info.get("app") != "init_model" or not isinstance(old, int) or not isinstance(new, int) or not old < new:
        where = "no model folder (benchmark mode)" if folder is None else f"the model at {folder}"
        raise GraftError(f"{key}={POLICY}: {where} was not expanded by research.init_model (its summary.json has no "
                         "old_size < new_size), so it has no new rows to train")
    return old


def split(model: torch.nn.Module, base: int) -> None:
    """Hold the model's input embeddings and lm_head as SplitRows (in place)."""
    emb = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is emb.weight
    rows = SplitRows(emb.weight, base)
    model.set_input_embeddings(SplitEmbedding(emb, rows))
    if head is not None:
        model.set_output_embeddings(SplitHead(rows if tied else SplitRows(head.weight, base)))


def merge(model: torch.nn.Module) -> None:
    """Back to ordinary nn.Embedding / nn.Linear modules holding the concatenated rows (in place)."""
    emb = model.get_input_embeddings()
    if not isinstance(emb, SplitEmbedding):
        return
    with torch.no_grad():
        weight = emb.weight.detach().clone()
        plain = torch.nn.Embedding(weight.shape[0], weight.shape[1], padding_idx=emb.padding_idx, _weight=weight)
        model.set_input_embeddings(plain)
        head = model.get_output_embeddings()
        if isinstance(head, SplitHead):
            tied = head.rows is emb.rows
            w = plain.weight if tied else torch.nn.Parameter(head.weight.detach().clone())
            linear = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
            linear.weight = w
            model.set_output_embeddings(linear)


def trains(name: str) -> bool:
    return name.endswith("new_rows")
