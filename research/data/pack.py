"""Pack documents into sequences of exactly `max_length` tokens, best-fit decreasing, losing no token.

A document longer than `max_length` is split into chunks (never cut off); a chunk whose labels are all -100
(a long source) is dropped and counted, since it would give a NaN loss. Chunks are placed longest first into the
open pack with the least room that still fits them (best-fit decreasing); the open packs are kept in a list
sorted by remaining room, so each placement is one bisect. Each pack records its documents' lengths
(`doc_lens`) so training can reset positions and mask attention per document, and is padded with the
tokenizer's pad id (never EOS) and label -100. Buckets are packed in order; `pack_bucket` can hand the chunks of a
bucket's least-filled pack on to the next bucket, so only the last bucket ends with a partly empty pack.
"""

from bisect import bisect_left, insort
from dataclasses import dataclass

import numpy as np

from research.contracts import IGNORE_INDEX
from research.data.tokenize import Doc

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


def chunk_docs(docs: list[Doc], max_length: int, members: list[int] | None = None) -> tuple[list[Chunk], dict]:
    """Chunks of docs[i] for i in members (all docs by default; an index may repeat, for weights > 1)."""
    chunks, split, dropped, dropped_tokens = [], 0, 0, 0
    for i in range(len(docs)) if members is None else members:
        d = docs[i]
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


def best_fit_decreasing(lengths: list[int], capacity: int, first: int = 0) -> list[list[int]]:
    """Indices of `lengths` per bin; each bin's total <= capacity. Deterministic (ties by index).

    Items < first (whose total must fit one bin) start in bin 0, before the rest are placed longest first."""
    bins: list[list[int]] = []
    room: list[int] = []  # sorted keys (remaining << 32 | bin id) of bins that still have room
    if first:
        seeded = sum(lengths[:first])
        if seeded > capacity:
            raise ValueError(f"the first {first} items hold {seeded} > {capacity}")
        bins.append(list(range(first)))
        if seeded < capacity:
            room.append((capacity - seeded) << _SHIFT)
    order = sorted(range(first, len(lengths)), key=lambda i: (-lengths[i], i))
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


def split_off_partial(bins: list[list[int]], lengths: list[int], capacity: int,
                      pinned: int) -> tuple[list[list[int]], list[int]]:
    """(bins kept, items handed on): the items of the least-filled, partly empty bin that holds no item < pinned.

    Items < pinned were carried in from the previous bucket and are never handed on again, so an item moves at
    most one bucket. Ties go to the later bin, so the choice is deterministic."""
    best, best_load = -1, capacity
    for b, items in enumerate(bins):
        load = sum(lengths[i] for i in items)
        if load <= best_load and load < capacity and all(i >= pinned for i in items):
            best, best_load = b, load
    if best < 0 or len(bins) < 2:
        return bins, []
    return bins[:best] + bins[best + 1:], bins[best]


def pack_bucket(docs: list[Doc], carried_in: list[Chunk], chunks: list[Chunk], max_length: int, pad_id: int,
                rng: np.random.Generator | None, carry_out: bool) -> tuple[Packs, list[Chunk]]:
    """Pack carried_in + chunks; with carry_out, hand the least-filled pack's chunks on to the next bucket.

    Best-fit decreasing already reaches ceil(tokens / max_length) packs per bucket on real corpora, so the padding
    left is the last, partly empty pack of each bucket; moving its (fewer than max_length) tokens to the next
    bucket leaves every bucket but the last nearly full, at the cost of bin alignment for those few documents."""
    items = carried_in + chunks
    lengths = [len(c) for c in items]
    # the carried-in chunks (fewer than max_length tokens: one pack's worth) share one pack, which best fit then
    # fills, so the least-filled pack is one of this bucket's own
    bins = best_fit_decreasing(lengths, max_length, first=len(carried_in))
    out: list[int] = []
    if carry_out:
        bins, out = split_off_partial(bins, lengths, max_length, pinned=len(carried_in))
    return materialise(docs, items, bins, max_length, pad_id, rng), [items[i] for i in out]


def pack(docs: list[Doc], chunks: list[Chunk], max_length: int, pad_id: int,
         rng: np.random.Generator | None) -> Packs:
    """Materialise the packs of `chunks` (of `docs`); shuffle pack order with rng when given."""
    return materialise(docs, chunks, best_fit_decreasing([len(c) for c in chunks], max_length), max_length,
                       pad_id, rng)


def materialise(docs: list[Doc], chunks: list[Chunk], bins: list[list[int]], max_length: int, pad_id: int,
                rng: np.random.Generator | None) -> Packs:
    if rng is not None:
        bins = [bins[i] for i in rng.permutation(len(bins))]
    ids = np.full((len(bins), max_length), pad_id, dtype=np.int32)
    labels = np.full((len(bins), max_length), IGNORE_INDEX, dtype=np.int32)
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
            labels[p, pos:pos + masked] = IGNORE_INDEX
            lens.append(n)
            cats.append(d.category)
            pos += n
        doc_lens.append(lens)
        doc_cats.append(cats)
        num_tokens[p] = pos
    return Packs(ids, labels, doc_lens, doc_cats, num_tokens)
