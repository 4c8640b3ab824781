import itertools

import numpy as np

from research.contracts import IGNORE_INDEX as IGNORE
from research.data.pack import best_fit_decreasing, chunk_docs, pack, pack_bucket, split_off_partial
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


def _carry_run(docs, members, L, carry):
    """Pack buckets in order as the pipeline does; return each bucket's Packs."""
    out, carried = [], []
    for k, idx in enumerate(members):
        chunks, _ = chunk_docs(docs, L, idx)
        p, carried = pack_bucket(docs, carried, chunks, L, 0, np.random.default_rng(k), carry and k + 1 < len(members))
        out.append(p)
    assert carried == []
    return out


def test_every_kept_token_appears_exactly_once_in_order_across_buckets():
    rng = np.random.default_rng(7)
    L, n_docs, n_buckets = 64, 600, 6
    lengths = np.concatenate([rng.integers(1, 40, n_docs - 40), rng.integers(60, 300, 40)])
    masked = np.minimum(rng.integers(0, 4, n_docs), lengths)
    masked[:5] = np.minimum(lengths[:5], 150)  # long sources: some chunks all -100, dropped
    starts = np.concatenate([[1], 1 + np.cumsum(lengths)[:-1]])  # token value = a global position, unique
    docs = [Doc(np.arange(s, s + n, dtype=np.int32), int(m), "ab"[i % 2])
            for i, (s, n, m) in enumerate(zip(starts, lengths, masked, strict=True))]
    members = [list(range(k, n_docs, n_buckets)) for k in range(n_buckets)]
    bucket_of = {i: k for k, idx in enumerate(members) for i in idx}
    owner = np.repeat(np.arange(n_docs), lengths)  # token value v belongs to doc owner[v - 1]

    efficiency = {}
    for carry in (False, True):
        buckets = _carry_run(docs, members, L, carry)
        seen: dict[int, list[tuple[int, int]]] = {}
        for k, p in enumerate(buckets):
            for row in range(len(p.num_tokens)):
                pos = 0
                for n in p.doc_lens[row]:
                    seg = p.input_ids[row, pos:pos + n]
                    d = int(owner[seg[0] - 1])
                    assert (seg == np.arange(seg[0], seg[0] + n)).all() and owner[seg[-1] - 1] == d  # in order, one doc
                    start = int(seg[0] - starts[d])
                    lab = p.labels[row, pos:pos + n]
                    want = np.where(np.arange(start, start + n) < masked[d], IGNORE, seg)
                    assert (lab == want).all() and (lab != IGNORE).any()  # no all-masked piece is kept
                    assert bucket_of[d] <= k <= bucket_of[d] + (1 if carry else 0)  # moves at most one bucket
                    seen.setdefault(d, []).append((start, start + n))
                    pos += n
        for d in range(n_docs):  # pieces tile the document exactly once, less the dropped all-masked chunks
            first_kept = int(lengths[d]) if masked[d] >= lengths[d] else int(masked[d]) // L * L
            assert [t for a, b in sorted(seen.get(d, [])) for t in range(a, b)] == list(range(first_kept, lengths[d]))
        total = sum(int(p.num_tokens.sum()) for p in buckets)
        packs = sum(len(p.num_tokens) for p in buckets)
        efficiency[carry] = total / (packs * L)
        if carry:  # every bucket but the last hands on its partly empty pack: about ceil(tokens / L) packs in all
            assert packs <= -(-total // L) + 1
    assert efficiency[True] > 0.99 > efficiency[False]


def test_split_off_partial_never_hands_on_a_carried_item():
    lengths = [3, 10, 5, 7, 2]
    bins = [[0, 3], [1], [2, 4]]  # bin 0 holds carried item 0; bin 2 is the least filled without one
    kept, out = split_off_partial(bins, lengths, 10, pinned=1)
    assert out == [2, 4] and kept == [[0, 3], [1]]
    assert split_off_partial([[0], [1]], [3, 10], 10, pinned=1) == ([[0], [1]], [])
    assert best_fit_decreasing([2, 3, 6, 4], 10, first=2) == [[0, 1], [2, 3]]  # seeded bin 0, then best fit
