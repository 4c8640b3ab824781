import re

import numpy as np
import pytest

from research.config.data import DedupConfig
from research.data.dedup import (
    dedup,
    exact_key,
    exact_keys,
    near_clusters_datasketch,
    near_clusters_numpy,
    optimal_bands,
    permutations,
    shingle_hashes,
    signatures_numpy,
)
from research.data.demo_corpus import peoples_daily_articles
from research.data.document import Record
from research.rejects import Rejects


@pytest.fixture(scope="module")
def articles():
    return [a for a in peoples_daily_articles() if len(a) > 400][:120]


def _jaccard(a, b, k=5):
    sa = {a[i:i + k] for i in range(len(a) - k + 1)}
    sb = {b[i:i + k] for i in range(len(b) - k + 1)}
    return len(sa & sb) / len(sa | sb)


def _edit(text, rng, n):
    chars = list(text)
    for p in rng.choice(len(chars), size=n, replace=False):
        chars[p] = "某"
    return "".join(chars)


def test_signature_estimates_jaccard(articles):
    rng = np.random.default_rng(0)
    cfg = DedupConfig(num_perm=256)
    pairs = [(a, _edit(a, rng, n)) for a, n in zip(articles[:20], range(2, 200, 10), strict=False)]
    sig = signatures_numpy([t for p in pairs for t in p], cfg)
    for i, (a, b) in enumerate(pairs):
        est = np.mean(sig[2 * i] == sig[2 * i + 1])
        assert abs(est - _jaccard(a, b)) < 0.1
    assert len(shingle_hashes("abc", 5)) == 1 and len(shingle_hashes("abcabcabc", 3)) == 3


def test_numpy_and_datasketch_find_the_same_near_duplicates(articles):
    rng = np.random.default_rng(1)
    copies = [_edit(a, rng, 3) for a in articles[:30]]
    texts = articles + copies
    cfg = DedupConfig(threshold=0.8)
    roots_np = near_clusters_numpy(texts, cfg)
    roots_ds = near_clusters_datasketch(texts, cfg)
    expected = list(range(len(articles))) + list(range(30))
    assert roots_np == expected
    assert roots_ds == expected


def test_dedup_removes_exact_and_near_and_names_the_kept_record(articles):
    rng = np.random.default_rng(2)
    recs = [Record("f", i + 1, "c", "", a) for i, a in enumerate(articles[:10])]
    recs.append(Record("f", 100, "c", "", "  " + articles[0].upper() + "!!"))  # exact after normalisation
    recs.append(Record("g", 7, "c", "", _edit(articles[3], rng, 4)))
    rejects = Rejects()
    kept, stats = dedup(recs, DedupConfig(), rejects, progress=False)
    assert [r.line for r in kept] == list(range(1, 11))
    assert stats == {"in": 12, "exact_removed": 1, "exact_clusters": 1, "near_removed": 1, "near_clusters": 1,
                     "bands_rows": list(optimal_bands(0.8, 128)), "kept": 10, "rejected": 2}
    assert [(r["reason"], r["kept"]) for r in rejects.rows] == [("exact_duplicate", "f:1"), ("near_duplicate", "f:4")]


def test_optimal_bands_fit_num_perm():
    for t in (0.5, 0.8, 0.95):
        b, r = optimal_bands(t, 128)
        assert b * r <= 128
    assert optimal_bands(0.9, 128)[1] > optimal_bands(0.5, 128)[1]  # stricter threshold -> longer bands


def test_batched_signatures_and_exact_keys_equal_the_per_text_definitions(articles):
    texts = articles[:40] + ["", "ab", "abcd", "abcde", "x" * 9000, "ABC, abc!", "abc abc", " a_b-c "] + articles[40:60]
    cfg = DedupConfig(num_perm=64)
    sig = signatures_numpy(texts, cfg)
    a, b = permutations(cfg.num_perm, cfg.seed)
    with np.errstate(over="ignore"):
        for i, t in enumerate(texts):
            h = shingle_hashes(t, cfg.shingle_size)
            want = ((a[:, None] * h[None, :] + b[:, None]) >> np.uint64(32)).min(axis=1) if len(h) else np.full(
                cfg.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
            assert (sig[i] == want).all(), i
    strip = re.compile(r"[\W_]+")
    first_ref, first = {}, {}
    for i, (t, k) in enumerate(zip(texts, exact_keys(texts), strict=True)):
        assert first_ref.setdefault(strip.sub("", t.lower()), i) == first.setdefault(k, i)
    assert exact_key("ABC, abc!") == exact_key("abc abc") != exact_key(" a_b-c ")
