"""Bins per document, the data-mix weights, and the packs as an Arrow table.

Each document's bin is a hash of (buckets.seed, category, text) mod `num_bins`, so it is decided by the document
alone and a sharded run gives every document the same bin whatever the shards; bucket k holds bin k of every
category, so every bucket has every category in proportion (bins hold equal numbers of documents in expectation,
and equal tokens up to the spread of document lengths). The mix weight of a category then repeats (integer part)
and subsamples (fractional part: a hash-chosen subset) its documents. Packing happens per bucket, in corpus order
(research/data/stages.py); with `data.pack.carry_over` the chunks of a bucket's least-filled pack move on to
bucket k+1.
"""

import hashlib
from pathlib import Path

import numpy as np

from research import contracts
from research.data.pack import Packs


def doc_hashes(seed: int, category: str, sources: list[str], targets: list[str]) -> np.ndarray:
    """(n, 2) uint64: two independent 64-bit hashes of each document (its bin, its fractional weight), from the
    seed, the category and the text only: never from where the document sits or how the corpus is sharded."""
    head = f"{seed}\x00{category}\x00".encode()
    digests = b"".join(hashlib.blake2b(head + s.encode() + b"\x00" + t.encode(), digest_size=16).digest()
                       for s, t in zip(sources, targets, strict=True))
    return np.frombuffer(digests, dtype="<u8").reshape(-1, 2)


def assign(hashes: np.ndarray, num_bins: int, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """(bin, copies) of each document: bin = hash mod num_bins; copies = floor(weight), plus one more for the
    documents whose second hash, as a fraction of 2^64, is below weight's fractional part."""
    bins = (hashes[:, 0] % np.uint64(num_bins)).astype(np.int64)
    reps, frac = int(weight), weight - int(weight)
    extra = (hashes[:, 1] >> np.uint64(11)).astype(np.float64) / float(1 << 53) < frac
    return bins, reps + extra.astype(np.int64)


def packs_table(p: Packs):
    """The packs as an Arrow table of the packed-bucket schema (research/contracts.py)."""
    return contracts.pack_table(p.input_ids, p.labels, p.doc_lens, p.doc_categories, p.num_tokens)


def save_bucket(p: Packs, path: Path) -> None:
    """A `datasets.load_from_disk` folder whose bytes depend only on the packs."""
    contracts.save_bucket(packs_table(p), path)
