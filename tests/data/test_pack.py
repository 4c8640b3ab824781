import itertools

import numpy as np

from research.data.pack import IGNORE, best_fit_decreasing, chunk_docs, pack
from research.data.tokenize import Doc


def _docs(lengths, masked=None, seed=0):
    rng = np.random.default_rng(seed)
    masked = masked or [1] * len(lengths)
    return [Doc(rng.integers(3, 1000, size=n, dtype=np.int32), m, "ab"[i % 2])
            for i, (n, m) in enumerate(zip(lengths, masked, strict=False))]


def _optimal_bins(lengths, cap):
    """Fewest bins, by brute force (tiny inputs only)."""
    n = len(lengths)
    for k in range(1, n + 1):
        for assign in itertools.product(range(k), repeat=n):
            loads = [0] * k
            for i, b in enumerate(assign):
                loads[b] += lengths[i]
            if max(loads) <= cap and len(set(assign)) == k:
                return k
    return n


def test_bfd_is_valid_and_near_optimal_on_small_cases():
    rng = np.random.default_rng(0)
    for _ in range(40):
        lengths = rng.integers(1, 11, size=int(rng.integers(1, 7))).tolist()
        bins = best_fit_decreasing(lengths, 10)
        assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
        assert all(sum(lengths[i] for i in b) <= 10 for b in bins)
        assert len(bins) <= (11 * _optimal_bins(lengths, 10)) // 9 + 1  # BFD's bound: 11/9 OPT + 6/9


def test_bfd_places_into_the_tightest_bin():
    # 6 opens a bin (room 4); 5 opens another (room 5); 4 must go into the bin with room 4, leaving room 5 for 5
    assert best_fit_decreasing([6, 5, 4, 5], 10) == [[0, 2], [1, 3]]


def test_no_token_lost_long_docs_split_and_masked_chunks_dropped():
    L = 64
    lengths = [200, 10, 64, 63, 1, 33, 150]
    masked = [1, 1, 1, 1, 0, 1, 140]  # last doc: first two chunks (0-64, 64-128) all masked -> dropped
    docs = _docs(lengths, masked)
    chunks, stats = chunk_docs(docs, L)
    assert stats["split_docs"] == 2 and stats["dropped_masked_chunks"] == 2 and stats["dropped_masked_tokens"] == 128
    p = pack(docs, chunks, L, pad_id=0, rng=np.random.default_rng(1))
    assert p.input_ids.shape[1] == L and p.labels.shape == p.input_ids.shape
    assert int(p.num_tokens.sum()) == sum(lengths) - 128
    # every chunk appears exactly once, with its tokens and labels
    seen = []
    for row in range(len(p.num_tokens)):
        assert sum(p.doc_lens[row]) == p.num_tokens[row] <= L
        assert (p.input_ids[row, p.num_tokens[row]:] == 0).all() and (p.labels[row, p.num_tokens[row]:] == IGNORE).all()
        pos = 0
        for n in p.doc_lens[row]:
            seen.append(p.input_ids[row, pos:pos + n].tobytes())
            pos += n
    expected = [d.ids[c.start:c.end].tobytes() for c in chunks for d in [docs[c.doc]]]
    assert sorted(seen) == sorted(expected)
    # labels: -100 exactly on the masked prefix of each document, ids elsewhere
    masked_total = int((p.labels[p.input_ids != 0] == IGNORE).sum())
    assert masked_total == sum(min(m, n) for n, m in zip(lengths, masked, strict=False)) - 128


def test_packing_efficiency_on_a_realistic_length_mix():
    rng = np.random.default_rng(3)
    lengths = np.concatenate([rng.integers(20, 200, 3000), rng.integers(500, 3000, 600), rng.integers(4000, 9000, 20)])
    docs = _docs(lengths.tolist())
    chunks, _ = chunk_docs(docs, 4096)
    p = pack(docs, chunks, 4096, pad_id=0, rng=None)
    assert p.num_tokens.sum() == lengths.sum()
    assert p.num_tokens.sum() / p.input_ids.size > 0.99
