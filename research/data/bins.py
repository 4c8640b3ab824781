"""Bins per category, the data-mix weights, and one packed Arrow dataset per bucket.

Each category's documents are shuffled with a seed derived from (buckets.seed, category) and cut into
`num_bins` bins of nearly equal token counts (cut points on the cumulative token count). Bucket k holds bin k of
every category, so every bucket has every category in proportion. The mix weight of a category then repeats
(integer part) and subsamples (fractional part, a seeded subset) each of its bins. Packing happens per bucket:
bucket k's packs hold the documents of bins k (mixing categories in one packing problem leaves less padding than
packing each (bin, category) alone), except that with `data.pack.carry_over` the chunks of its least-filled pack
move on to bucket k+1 (research/data/pack.py).
"""

import zlib
from pathlib import Path

import numpy as np

from research import contracts
from research.data.pack import Packs
from research.data.tokenize import Doc


def category_rng(seed: int, category: str, salt: int = 0) -> np.random.Generator:
    # crc32, not hash(): Python salts str hashes per process, which would break determinism across runs
    return np.random.default_rng([seed, zlib.crc32(category.encode("utf-8")), salt])


def assign_bins(docs: list[Doc], num_bins: int, seed: int) -> dict[str, list[list[int]]]:
    """category -> num_bins lists of doc indices, each bin ~1/num_bins of the category's tokens."""
    by_cat: dict[str, list[int]] = {}
    for i, d in enumerate(docs):
        by_cat.setdefault(d.category, []).append(i)
    out = {}
    for cat in sorted(by_cat):
        idx = np.array(by_cat[cat])[category_rng(seed, cat).permutation(len(by_cat[cat]))]
        lens = np.array([len(docs[i].ids) for i in idx], dtype=np.int64)
        before = np.cumsum(lens) - lens  # tokens ahead of each doc in shuffled order
        which = np.minimum(before * num_bins // max(int(lens.sum()), 1), num_bins - 1)
        out[cat] = [idx[which == b].tolist() for b in range(num_bins)]
    return out


def apply_weight(indices: list[int], weight: float, rng: np.random.Generator) -> list[int]:
    """Repeat floor(weight) times, then add a seeded subset of round(frac * n) documents."""
    reps = int(weight)
    extra = int(round((weight - reps) * len(indices)))
    chosen = sorted(rng.permutation(len(indices))[:extra].tolist()) if extra else []
    return indices * reps + [indices[i] for i in chosen]


def bucket_docs(bins: dict[str, list[list[int]]], weights: dict[str, float], num_bins: int,
                seed: int) -> list[list[int]]:
    """Doc indices of each bucket, after weighting; category by category in name order."""
    out = []
    for k in range(num_bins):
        members: list[int] = []
        for cat in sorted(bins):
            members.extend(apply_weight(bins[cat][k], weights.get(cat, 1.0), category_rng(seed, cat, salt=k + 1)))
        out.append(members)
    return out


def packs_table(p: Packs):
    """The packs as an Arrow table of the packed-bucket schema (research/contracts.py)."""
    return contracts.pack_table(p.input_ids, p.labels, p.doc_lens, p.doc_categories, p.num_tokens)


def save_bucket(p: Packs, path: Path) -> None:
    """A `datasets.load_from_disk` folder whose bytes depend only on the packs."""
    contracts.save_bucket(packs_table(p), path)
