"""Pack documents into sequences of exactly `max_length` tokens, best-fit decreasing, losing no token.

A document longer than `max_length` is split into chunks (never cut off); a chunk whose labels are all -100
(a long source) is dropped and counted, since it would give a NaN loss. Chunks are placed longest first into the
open pack with the least room that still fits them (best-fit decreasing); the open packs are kept in a list
sorted by remaining room, so each placement is one bisect. Each pack records its documents' lengths
(`doc_lens`) so training can reset positions and mask attention per document, and is padded with the
tokenizer's pad id (never EOS) and label -100.
"""

from bisect import bisect_left, insort
from dataclasses import dataclass

import numpy as np

from research.data.tokenize import Doc

IGNORE = -100
_SHIFT = 32
_MASK = (1 << _SHIFT) - 1


@dataclass(slots=True)
class Chunk:
    doc: int
    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start


@dataclass
class Packs:
    input_ids: np.ndarray
    """(num_packs, max_length) int32."""
    labels: np.ndarray
    doc_lens: list[list[int]]
    doc_categories: list[list[str]]
    num_tokens: np.ndarray


def chunk_docs(docs: list[Doc], max_length: int) -> tuple[list[Chunk], dict]:
    chunks, split, dropped, dropped_tokens = [], 0, 0, 0
    for i, d in enumerate(docs):
        n = len(d.ids)
        if n > max_length:
            split += 1
        for s in range(0, n, max_length):
            e = min(s + max_length, n)
            if e <= d.n_masked:  # every label in this chunk is -100
                dropped += 1
                dropped_tokens += e - s
                continue
            chunks.append(Chunk(i, s, e))
    return chunks, {"chunks": len(chunks), "split_docs": split, "dropped_masked_chunks": dropped,
                    "dropped_masked_tokens": dropped_tokens}


def best_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` per bin; each bin's total <= capacity. Deterministic (ties by index)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    room: list[int] = []  # sorted keys (remaining << 32 | bin id) of bins that still have room
    for i in order:
        n = lengths[i]
        if n > capacity or n <= 0:
            raise ValueError(f"item {i} has length {n}, outside (0, {capacity}]")
        pos = bisect_left(room, n << _SHIFT)
        if pos < len(room):
            key = room.pop(pos)
            b, left = key & _MASK, key >> _SHIFT
        else:
            b, left = len(bins), capacity
            bins.append([])
        bins[b].append(i)
        left -= n
        if left > 0:
            insort(room, (left << _SHIFT) | b)
    return bins


def pack(docs: list[Doc], chunks: list[Chunk], max_length: int, pad_id: int,
         rng: np.random.Generator | None) -> Packs:
    """Materialise the packs of `chunks` (of `docs`); shuffle pack order with rng when given."""
    bins = best_fit_decreasing([len(c) for c in chunks], max_length)
    if rng is not None:
        bins = [bins[i] for i in rng.permutation(len(bins))]
    ids = np.full((len(bins), max_length), pad_id, dtype=np.int32)
    labels = np.full((len(bins), max_length), IGNORE, dtype=np.int32)
    doc_lens, doc_cats, num_tokens = [], [], np.zeros(len(bins), dtype=np.int32)
    for p, b in enumerate(bins):
        pos, lens, cats = 0, [], []
        for ci in b:
            c = chunks[ci]
            d = docs[c.doc]
            n = len(c)
            ids[p, pos:pos + n] = d.ids[c.start:c.end]
            labels[p, pos:pos + n] = d.ids[c.start:c.end]
            masked = min(max(d.n_masked - c.start, 0), n)
            labels[p, pos:pos + masked] = IGNORE
            lens.append(n)
            cats.append(d.category)
            pos += n
        doc_lens.append(lens)
        doc_cats.append(cats)
        num_tokens[p] = pos
    return Packs(ids, labels, doc_lens, doc_cats, num_tokens)
