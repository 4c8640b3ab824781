import numpy as np

from research.data.bins import apply_weight, assign_bins, bucket_docs, packs_table
from research.data.pack import chunk_docs, pack
from research.data.tokenize import Doc


def _docs(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for cat, n, lo, hi in (("news", 300, 200, 3000), ("reviews", 900, 20, 200), ("wiki", 120, 100, 800)):
        out += [Doc(rng.integers(3, 100, int(rng.integers(lo, hi)), dtype=np.int32), 1, cat) for _ in range(n)]
    return out


def test_bins_partition_each_category_with_balanced_tokens():
    docs = _docs()
    bins = assign_bins(docs, 10, seed=5)
    for cat, bs in bins.items():
        members = sorted(i for b in bs for i in b)
        assert members == [i for i, d in enumerate(docs) if d.category == cat]
        tokens = [sum(len(docs[i].ids) for i in b) for b in bs]
        biggest_doc = max(len(docs[i].ids) for i in members)
        assert max(tokens) - min(tokens) <= 2 * biggest_doc
    assert assign_bins(docs, 10, seed=5) == bins
    assert assign_bins(docs, 10, seed=6) != bins


def test_every_bucket_has_every_category_in_proportion():
    docs = _docs()
    members = bucket_docs(assign_bins(docs, 5, seed=0), {"news": 1.0, "reviews": 1.0, "wiki": 1.0}, 5, seed=0)
    total = {c: sum(len(d.ids) for d in docs if d.category == c) for c in ("news", "reviews", "wiki")}
    for idx in members:
        for c in total:
            share = sum(len(docs[i].ids) for i in idx if docs[i].category == c) / total[c]
            assert abs(share - 0.2) < 0.05


def test_weights_repeat_and_subsample_deterministically():
    idx = list(range(100))
    assert apply_weight(idx, 2.0, np.random.default_rng(0)) == idx + idx
    half = apply_weight(idx, 0.5, np.random.default_rng(0))
    assert len(half) == 50 and len(set(half)) == 50 and half == sorted(half)
    assert half == apply_weight(idx, 0.5, np.random.default_rng(0))
    assert len(apply_weight(idx, 1.25, np.random.default_rng(0))) == 125
    assert apply_weight(idx, 0.0, np.random.default_rng(0)) == []


def test_arrow_table_matches_the_contract():
    docs = _docs()[:50]
    chunks, _ = chunk_docs(docs, 512)
    p = pack(docs, chunks, 512, pad_id=0, rng=None)
    t = packs_table(p)
    assert str(t.schema.field("input_ids").type) == "list<item: int32>"
    assert str(t.schema.field("doc_categories").type) == "list<item: string>"
    assert str(t.schema.field("num_tokens").type) == "int32"
    rows = t.to_pylist()
    assert all(len(r["input_ids"]) == 512 == len(r["labels"]) for r in rows)
    assert [sum(r["doc_lens"]) for r in rows] == [r["num_tokens"] for r in rows]
