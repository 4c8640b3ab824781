import numpy as np

from research.data.bins import assign, doc_hashes, packs_table
from research.data.pack import chunk_docs, pack
from research.data.tokenize import Doc


def _docs(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for cat, n, lo, hi in (("news", 300, 200, 3000), ("reviews", 900, 20, 200), ("wiki", 120, 100, 800)):
        out += [Doc(rng.integers(3, 100, int(rng.integers(lo, hi)), dtype=np.int32), 1, cat) for _ in range(n)]
    return out


def _texts(n, seed=0):
    rng = np.random.default_rng(seed)
    return [f"document {i} " + "x" * int(rng.integers(1, 50)) for i in range(n)]


def test_a_documents_bin_depends_on_its_text_and_the_seed_only():
    texts = _texts(2000)
    h = doc_hashes(5, "news", [""] * len(texts), texts)
    bins, _ = assign(h, 10, 1.0)
    order = np.random.default_rng(1).permutation(len(texts))  # another order (another sharding): same bins
    shuffled, _ = assign(doc_hashes(5, "news", [""] * len(texts), [texts[i] for i in order]), 10, 1.0)
    assert (shuffled == bins[order]).all()
    assert not (assign(doc_hashes(6, "news", [""] * len(texts), texts), 10, 1.0)[0] == bins).all()
    assert not (assign(doc_hashes(5, "wiki", [""] * len(texts), texts), 10, 1.0)[0] == bins).all()
    assert set(bins.tolist()) == set(range(10))


def test_every_bucket_has_every_category_in_proportion():
    rng = np.random.default_rng(0)
    docs = [Doc(rng.integers(3, 100, int(rng.integers(lo, hi)), dtype=np.int32), 1, cat)
            for cat, lo, hi in (("news", 200, 3000), ("reviews", 20, 200), ("wiki", 100, 800)) for _ in range(3000)]
    share = {}
    for cat in ("news", "reviews", "wiki"):
        mine = [d for d in docs if d.category == cat]
        h = doc_hashes(0, cat, [""] * len(mine), [" ".join(map(str, d.ids.tolist())) for d in mine])
        bins, _ = assign(h, 5, 1.0)
        total = sum(len(d.ids) for d in mine)
        share[cat] = [sum(len(d.ids) for d, b in zip(mine, bins, strict=True) if b == k) / total for k in range(5)]
    for cat, s in share.items():
        assert all(abs(x - 0.2) < 0.02 for x in s), (cat, s)  # hashing balances tokens in expectation


def test_weights_repeat_and_subsample_deterministically():
    h = doc_hashes(0, "c", [""] * 4000, _texts(4000))
    assert (assign(h, 3, 2.0)[1] == 2).all() and (assign(h, 3, 1.0)[1] == 1).all()
    assert (assign(h, 3, 0.0)[1] == 0).all()
    half = assign(h, 3, 0.5)[1]
    assert set(half.tolist()) == {0, 1} and abs(half.mean() - 0.5) < 0.03
    assert (assign(h, 3, 0.5)[1] == half).all()
    more = assign(h, 3, 1.25)[1]
    assert set(more.tolist()) == {1, 2} and abs(more.mean() - 1.25) < 0.03
    # a smaller fraction keeps a subset of what a larger one keeps
    assert ((assign(h, 3, 0.25)[1] == 1) <= (half == 1)).all()


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
