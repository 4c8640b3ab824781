"""Read packed bucket datasets (research/contracts.py) and serve each stage's packs in bucket order.

Within a stage, buckets are consumed one after another, each one's packs (after the stage's per-category mix)
shuffled from a seed that depends on (seed, stage, bucket, epoch) only. Position p of a stage's stream is a pure
function of those, so the position alone (saved in checkpoints) restores the sampler exactly. A global step takes
`global_batch` consecutive positions; data-parallel rank r takes micro-batch a's slice
`[(a * dp + r) * mb, (a * dp + r + 1) * mb)` of them.
"""

import math

import numpy as np
import torch

from research.config.schedule import StageConfig, parse_buckets
from research.contracts import IGNORE_INDEX
from research.errors import GraftError


def max_token_id(ds) -> int:
    """Largest id in a bucket's input_ids (an Arrow scan, no Python loop)."""
    import pyarrow.compute as pc

    col = ds.data.column("input_ids")
    value = pc.max(pc.list_flatten(col)).as_py()
    return -1 if value is None else int(value)


def _majority_categories(ds, categories: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(categories)}
    out = np.empty(len(ds), dtype=np.int64)
    for i, (lens, cats) in enumerate(zip(ds["doc_lens"], ds["doc_categories"], strict=True)):
        tally: dict[str, int] = {}
        for n, c in zip(lens, cats, strict=True):
            tally[c] = tally.get(c, 0) + n
        out[i] = index.get(max(tally, key=tally.get), -1) if tally else -1
    return out


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


class StageStream:
    """The ordered (bucket, row) stream of one stage, extended past one pass by reshuffled epochs."""

    def __init__(self, stage: StageConfig, stage_index: int, buckets: list, categories: list[str], seed: int):
        self.stage_index, self.seed, self.buckets = stage_index, seed, buckets
        self.bucket_ids = parse_buckets(stage.buckets, len(buckets), key=f"schedule.stages[{stage.name}].buckets")
        unknown = sorted(set(stage.mix) - set(categories))
        if unknown:
            raise GraftError(f"schedule.stages[{stage.name}].mix names categories {unknown} absent from the data "
                             f"(it has {categories})")
        uniform = not stage.mix and stage.mix_default == 1.0
        # Rows picked from each bucket (before shuffling): a category's rate r takes floor(r) copies of every pack
        # and a seeded (r - floor(r)) share of them once more.
        self.selected: list[np.ndarray] = []
        for b in self.bucket_ids:
            n = len(buckets[b])
            if uniform:
                self.selected.append(np.arange(n))
                continue
            cats = _majority_categories(buckets[b], categories)
            rates = np.array([stage.mix.get(c, stage.mix_default) for c in categories] + [stage.mix_default])
            rows: list[np.ndarray] = []
            for ci, rate in enumerate(rates):
                members = np.flatnonzero(cats == (ci if ci < len(categories) else -1))
                whole, frac = int(math.floor(rate)), rate - math.floor(rate)
                rows.extend([members] * whole)
                take = int(round(frac * len(members)))
                if take:
                    rows.append(np.sort(_rng(seed, stage_index, b, ci, 7).choice(members, take, replace=False)))
            self.selected.append(np.sort(np.concatenate(rows)) if rows else np.arange(0))
        self.sizes = [len(s) for s in self.selected]
        self.length = sum(self.sizes)
        if self.length == 0:
            raise GraftError(f"schedule.stages[{stage.name}]: no packs selected (buckets={stage.buckets!r}, "
                             f"mix={dict(stage.mix)}, {len(buckets)} buckets in the data)")
        self._epoch, self._order = -1, None

    def _epoch_order(self, epoch: int):
        if epoch != self._epoch:
            parts = []
            for b, rows in zip(self.bucket_ids, self.selected, strict=True):
                perm = _rng(self.seed, self.stage_index, b, epoch).permutation(len(rows))
                parts.append(np.stack([np.full(len(rows), b), rows[perm]], axis=1))
            self._order, self._epoch = np.concatenate(parts), epoch
        return self._order

    def locate(self, position: int):
        """(bucket, row) at stream position `position`."""
        epoch, offset = divmod(position, self.length)
        b, row = self._epoch_order(epoch)[offset]
        return int(b), int(row)


class RankSlice(torch.utils.data.Dataset):
    """This rank's packs for steps [first_step, last_step) of a stage, in consumption order."""

    def __init__(self, stream: StageStream, start_position: int, num_steps: int, micro_batch: int, grad_accum: int,
                 dp_size: int, dp_rank: int):
        self.stream = stream
        self.items = []
        global_batch = micro_batch * grad_accum * dp_size
        for s in range(num_steps):
            base = start_position + s * global_batch
            for a in range(grad_accum):
                first = base + (a * dp_size + dp_rank) * micro_batch
                self.items.extend(range(first, first + micro_batch))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        b, row = self.stream.locate(self.items[i])
        r = self.stream.buckets[b][row]
        return {"input_ids": r["input_ids"], "labels": r["labels"], "doc_lens": r["doc_lens"],
                "doc_categories": r["doc_categories"], "bucket": b}


class Collator:
    """Stack packs; derive position ids, the per-document causal mask and per-token categories from doc_lens."""

    def __init__(self, categories: list[str], doc_mask: bool, mask_dtype: torch.dtype, window: int | None = None):
        self.index = {c: i for i, c in enumerate(categories)}
        self.doc_mask, self.mask_dtype, self.window = doc_mask, mask_dtype, window

    def __call__(self, rows: list[dict]) -> dict:
        input_ids = torch.tensor([r["input_ids"] for r in rows], dtype=torch.long)
        labels = torch.tensor([r["labels"] for r in rows], dtype=torch.long)
        B, L = input_ids.shape
        segment = torch.empty(B, L, dtype=torch.long)
        position = torch.empty(B, L, dtype=torch.long)
        category = torch.full((B, L), -1, dtype=torch.long)
        for i, r in enumerate(rows):
            start = 0
            for d, (n, c) in enumerate(zip(r["doc_lens"], r["doc_categories"], strict=True)):
                segment[i, start:start + n] = d
                position[i, start:start + n] = torch.arange(n)
                category[i, start:start + n] = self.index.get(c, -1)
                if self.doc_mask:
                    # Run separately, a document's first token is never predicted: not from the previous document.
                    labels[i, start] = IGNORE_INDEX
                start += n
            # Padding forms one more segment, so no attention row is empty (an empty row would give NaN).
            segment[i, start:] = len(r["doc_lens"])
            position[i, start:] = torch.arange(L - start)
        batch = {"input_ids": input_ids, "labels": labels, "category": category,
                 "buckets": [r["bucket"] for r in rows]}
        if self.doc_mask:
            batch["position_ids"] = position
            batch["attention_mask"] = doc_causal_mask(segment, self.mask_dtype, self.window)
        return batch


def doc_causal_mask(segment: torch.Tensor, dtype: torch.dtype, window: int | None = None) -> torch.Tensor:
    """Additive [B, 1, L, L] mask (0 = attend, dtype min = blocked): causal and within one segment only, and with
    `window` (a sliding-window model: Mistral) to the `window` most recent positions, the query's own included.

    Additive rather than boolean because both transformers' eager/SDPA paths and colossalai's sharded attention
    add it to the scores. transformers uses a 4-D mask as given, without the model's own sliding window, so the
    window must be part of it (the mask it builds itself attends to key j from query i iff i - window < j <= i).
    """
    L = segment.shape[1]
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    if window is not None:
        causal &= ~torch.ones(L, L, dtype=torch.bool).tril(-window)
    allowed = (segment[:, :, None] == segment[:, None, :]) & causal
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]
