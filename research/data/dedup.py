"""Exact and near-duplicate removal.

Exact: a hash of the text with case, whitespace and punctuation removed. Near: MinHash over character shingles
(so Chinese, which has no spaces, works), LSH banding to find candidates, each candidate checked against its
bucket's first member by estimated Jaccard, clusters by union-find. The earliest record of a cluster is kept;
every other goes to rejects.jsonl naming the kept one.

Two MinHash implementations give the same kind of signature: `numpy` hashes all shingles of a batch of documents
with array operations (rolling polynomial hash + splitmix64, then multiply-shift hashing (a*h + b) >> 32 with 64-bit
a, b for every permutation at once: no modulo, which is the slow part of the textbook (a*h + b) mod p); `datasketch` is the maintained library (sha1 per shingle, its MinHashLSH). benchmarks/prepare_data.py
measures both; numpy is the default because it is several times faster at equal recall.
"""

import hashlib

import numpy as np
from tqdm import tqdm

from research.config.data import DedupConfig
from research.data import charclass as cc
from research.data.document import Record
from research.rejects import Rejects

STEP = "dedup"
SHIFT32 = np.uint64(32)
BATCH_SHINGLES = 4096
BATCH_TEXTS = 2048


def exact_key(text: str) -> bytes:
    """Hash of the lower-cased text without whitespace and punctuation (its letters and digits)."""
    return exact_keys([text])[0]


def exact_keys(texts: list[str]) -> list[bytes]:
    """exact_key of many texts: the letters and digits ([^\\W_], as re) are picked with one table lookup."""
    cps, offsets = cc.code_points([t.lower() for t in texts])
    keep = (cc.table()[cps] & cc.ALNUM) != 0
    kept = cps[keep]
    before = np.zeros(len(cps) + 1, dtype=np.int64)  # kept code points before each position
    np.cumsum(keep, out=before[1:])
    cut = before[offsets].tolist()
    data = kept.tobytes()
    return [hashlib.blake2b(data[4 * cut[i]:4 * cut[i + 1]], digest_size=16).digest() for i in range(len(texts))]


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def shingle_hashes(text: str, k: int) -> np.ndarray:
    """Distinct 32-bit hashes of the character k-grams of text (the whole text if shorter than k)."""
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    k = max(1, min(k, len(cps)))
    m = len(cps) - k + 1
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            h = h * np.uint64(1_000_003) + cps[j:j + m]
        return np.unique(_splitmix64(h) >> np.uint64(32))


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << 63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd
    b = rng.integers(0, 1 << 63, size=num_perm, dtype=np.uint64)
    return a, b


def block_shingle_hashes(texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """shingle_hashes of every text at once, not deduplicated (a min does not need it), concatenated; and each
    text's start offset into them (with a final end). A text shorter than k has one shingle: itself."""
    cps, offsets = cc.code_points(texts)
    n = np.diff(offsets)
    padded = np.concatenate([cps, np.zeros(k, dtype=np.uint32)]).astype(np.uint64)
    starts = offsets[:-1]
    short = np.flatnonzero((n > 0) & (n < k))
    short_vals = np.zeros(len(short), dtype=np.uint64)
    h = np.zeros(len(cps), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            h = h * np.uint64(1_000_003) + padded[j:j + len(cps)]
            hit = n[short] == j + 1  # a short text's own hash: the rolling hash after len(text) characters
            short_vals[hit] = h[starts[short[hit]]]
        h[starts[short]] = short_vals
        doc = np.repeat(np.arange(len(texts)), n)
        pos = np.arange(len(cps))
        valid = pos + k <= offsets[1:][doc]
        valid[starts[short]] = True
        hashes = _splitmix64(h[valid]) >> np.uint64(32)
    counts = np.where(n >= k, n - k + 1, np.minimum(n, 1))
    out_offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out_offsets[1:])
    return hashes, out_offsets


def signatures_numpy(texts: list[str], cfg: DedupConfig, progress: bool = False) -> np.ndarray:
    """(len(texts), num_perm) uint64 MinHash signatures, many short documents per array operation."""
    a, b = permutations(cfg.num_perm, cfg.seed)
    out = np.full((len(texts), cfg.num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    # one reusable (num_perm x rows) buffer small enough to stay in cache; in-place ops avoid temporaries; each
    # permutation's values of a document are contiguous, so the per-document min (reduceat along rows) streams
    buf = np.empty((cfg.num_perm, BATCH_SHINGLES), dtype=np.uint64)
    a, b = a[:, None], b[:, None]

    def permuted(h: np.ndarray) -> np.ndarray:
        o = buf[:, :len(h)]
        np.multiply(a, h[None, :], out=o)
        o += b
        o >>= SHIFT32
        return o

    bar = tqdm(total=len(texts), desc="minhash", unit="doc", disable=not progress, mininterval=1.0)
    with np.errstate(over="ignore"):
        for t0 in range(0, len(texts), BATCH_TEXTS):
            hashes, offs = block_shingle_hashes(texts[t0:t0 + BATCH_TEXTS], cfg.shingle_size)
            counts = np.diff(offs).tolist()
            offs = offs.tolist()
            i, m = 0, len(counts)
            while i < m:
                if counts[i] == 0:  # an empty text keeps the all-max signature
                    i += 1
                elif counts[i] > BATCH_SHINGLES:  # a long document alone, slice by slice
                    sig = out[t0 + i]
                    for s in range(offs[i], offs[i + 1], BATCH_SHINGLES):
                        np.minimum(sig, permuted(hashes[s:min(s + BATCH_SHINGLES, offs[i + 1])]).min(axis=1), out=sig)
                    i += 1
                else:  # consecutive documents sharing one buffer: a contiguous slice of the hashes
                    j = i
                    while j < m and 0 < counts[j] and offs[j + 1] - offs[i] <= BATCH_SHINGLES:
                        j += 1
                    seg = np.array(offs[i:j], dtype=np.int64) - offs[i]
                    out[t0 + i:t0 + j] = np.minimum.reduceat(permuted(hashes[offs[i]:offs[j]]), seg, axis=1).T
                    i = j
            bar.update(len(counts))
    bar.close()
    return out


def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising false-positive + false-negative probability mass around the threshold."""
    best, best_err = (1, num_perm), float("inf")
    s_lo = np.linspace(0.0, threshold, 201)
    s_hi = np.linspace(threshold, 1.0, 201)
    for bands in range(1, num_perm + 1):
        rows = num_perm // bands
        p_lo = 1 - (1 - s_lo ** rows) ** bands
        p_hi = 1 - (1 - s_hi ** rows) ** bands
        err = np.trapezoid(p_lo, s_lo) + np.trapezoid(1 - p_hi, s_hi)
        if err < best_err:
            best, best_err = (bands, rows), err
    return best


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:  # the smaller index (earlier record) stays the root, so it is the one kept
            self.parent[max(rx, ry)] = min(rx, ry)


def near_clusters_numpy(texts: list[str], cfg: DedupConfig, progress: bool = False) -> list[int]:
    """root[i]: index of the earliest document in i's near-duplicate cluster."""
    sig = signatures_numpy(texts, cfg, progress)
    bands, rows = optimal_bands(cfg.threshold, cfg.num_perm)
    uf = _UnionFind(len(texts))
    for band in range(bands):
        keys = np.ascontiguousarray(sig[:, band * rows:(band + 1) * rows]).view(f"V{8 * rows}").ravel()
        first: dict[bytes, int] = {}
        for i, key in enumerate(keys.tolist()):
            j = first.setdefault(key, i)
            if j != i and np.mean(sig[i] == sig[j]) >= cfg.threshold:
                uf.union(i, j)
    return [uf.find(i) for i in range(len(texts))]


def near_clusters_datasketch(texts: list[str], cfg: DedupConfig, progress: bool = False) -> list[int]:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
    sigs = []
    for i, t in enumerate(tqdm(texts, desc="minhash", unit="doc", disable=not progress, mininterval=1.0)):
        k = max(1, min(cfg.shingle_size, len(t)))
        m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed)
        m.update_batch(sorted({t[p:p + k].encode("utf-8") for p in range(len(t) - k + 1)}))
        sigs.append(m)
        lsh.insert(i, m, check_duplication=False)
    uf = _UnionFind(len(texts))
    for i, m in enumerate(sigs):
        for j in sorted(lsh.query(m)):
            if j < i and m.jaccard(sigs[j]) >= cfg.threshold:
                uf.union(i, j)
    return [uf.find(i) for i in range(len(texts))]


NEAR_IMPLS = {"numpy": near_clusters_numpy, "datasketch": near_clusters_datasketch}


def dedup(records: list[Record], cfg: DedupConfig, rejects: Rejects,
          progress: bool = True) -> tuple[list[Record], dict]:
    stats = {"in": len(records), "exact_removed": 0, "exact_clusters": 0, "near_removed": 0, "near_clusters": 0}
    if cfg.exact:
        first: dict[bytes, int] = {}
        kept, hit = [], set()
        keys = [k for s in range(0, len(records), BATCH_TEXTS)
                for k in exact_keys([r.text for r in records[s:s + BATCH_TEXTS]])]
        for i, (rec, key) in enumerate(zip(records, keys, strict=True)):
            j = first.setdefault(key, i)
            if j == i:
                kept.append(rec)
            else:
                rejects.add_record(STEP, rec, "exact_duplicate", kept=records[j].uid)
                hit.add(j)
        stats["exact_removed"] = len(records) - len(kept)
        stats["exact_clusters"] = len(hit)
        records = kept
    if cfg.near and records:
        roots = NEAR_IMPLS[cfg.impl]([r.text for r in records], cfg, progress)
        kept = []
        for i, (rec, root) in enumerate(zip(records, roots, strict=False)):
            if root == i:
                kept.append(rec)
            else:
                rejects.add_record(STEP, rec, "near_duplicate", kept=records[root].uid)
        stats["near_removed"] = len(records) - len(kept)
        stats["near_clusters"] = len({r for i, r in enumerate(roots) if r != i})
        stats["bands_rows"] = list(optimal_bands(cfg.threshold, cfg.num_perm)) if cfg.impl == "numpy" else None
        records = kept
    stats["kept"] = len(records)
    stats["rejected"] = stats["exact_removed"] + stats["near_removed"]
    assert stats["in"] == stats["kept"] + stats["rejected"]
    return records, stats
