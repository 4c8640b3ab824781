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
import re

import numpy as np
from tqdm import tqdm

from research.config.data import DedupConfig
from research.data.records import Record, Rejects

STEP = "dedup"
SHIFT32 = np.uint64(32)
BATCH_SHINGLES = 4096
_STRIP = re.compile(r"[\W_]+")


def exact_key(text: str) -> bytes:
    return hashlib.blake2b(_STRIP.sub("", text.lower()).encode("utf-8"), digest_size=16).digest()


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


def signatures_numpy(texts: list[str], cfg: DedupConfig, progress: bool = False) -> np.ndarray:
    """(len(texts), num_perm) uint64 MinHash signatures, many short documents per array operation."""
    a, b = permutations(cfg.num_perm, cfg.seed)
    out = np.empty((len(texts), cfg.num_perm), dtype=np.uint64)
    # one reusable (rows x num_perm) buffer small enough to stay in cache; in-place ops avoid temporaries
    # (num_perm x rows): each permutation's values of a document are contiguous, so the per-document min
    # (reduceat along rows) streams through memory
    buf = np.empty((cfg.num_perm, BATCH_SHINGLES), dtype=np.uint64)
    a, b = a[:, None], b[:, None]

    def permuted(h: np.ndarray) -> np.ndarray:
        o = buf[:, :len(h)]
        np.multiply(a, h[None, :], out=o)
        o += b
        o >>= SHIFT32
        return o

    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if pending:
            flat = np.concatenate([h for _, h in pending])
            starts = np.cumsum([0] + [len(h) for _, h in pending[:-1]])
            out[[i for i, _ in pending]] = np.minimum.reduceat(permuted(flat), starts, axis=1).T
            pending.clear()

    rows = 0
    with np.errstate(over="ignore"):
        for i, text in enumerate(tqdm(texts, desc="minhash", unit="doc", disable=not progress, mininterval=1.0)):
            h = shingle_hashes(text, cfg.shingle_size)
            if len(h) > BATCH_SHINGLES:  # a long document alone, slice by slice
                sig = np.full(cfg.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
                for s in range(0, len(h), BATCH_SHINGLES):
                    np.minimum(sig, permuted(h[s:s + BATCH_SHINGLES]).min(axis=1), out=sig)
                out[i] = sig
                continue
            if rows + len(h) > BATCH_SHINGLES:
                flush()
                rows = 0
            pending.append((i, h))
            rows += len(h)
        flush()
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
        for i, rec in enumerate(records):
            j = first.setdefault(exact_key(rec.text), i)
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
