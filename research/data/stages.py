"""The sharded stages of prepare_data: what one task of each stage does, with bounded memory.

Every stage is a list of independent tasks (a task is one shard, one hash partition, one LSH band or one bucket)
that read the files earlier stages wrote under the work folder and write their own files there; datatrove's
executors run them (research/data/engine.py). A record's position `pos` = (file index << 40) | line number is
its place in the corpus, and every corpus-wide choice is made in `pos` order: the earliest copy of a duplicate is
kept, ties of scores go to the earlier record, buckets are packed in corpus order. Bins and weights are decided per
document from the seed and a hash of the document. So the outputs depend on the inputs and the config only: not on
how many shards the corpus is cut into, nor on how many workers run them.

    records   (one task per shard)      read -> clean; the survivors as Arrow, exact-dedup keys by partition
    exact     (one task per partition)  the earliest record per key is kept; the others are removed
    signals   (one task per shard)      MinHash signatures and LSH band keys, quality scores (only if switched on)
    bands     (one task per band)       records sharing a band key with an earlier one, checked by estimated Jaccard
    decide    (one task)                near-duplicate clusters (union-find, O(records) memory), score filter,
                                        categories left empty
    tokenize  (one task per shard)      drop the removed records (rejects per shard), tokenize, bin and weight;
                                        one token stream per bucket
    pack      (one task per bucket)     best fit over windows of the bucket's stream in corpus order; Arrow files

Each task writes its files under temporary names and renames them when done, so a killed task leaves nothing
that a later task could mistake for its output; the executor records a task as complete only after it returns,
and a rerun skips completed tasks (resume).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from research.config.root import GraftConfig
from research.contracts import BUCKETS_DIR, bucket_name
from research.data import bins as bk
from research.data import read as rd
from research.data.clean import check_batch, expected_langs
from research.data.dedup import BATCH_TEXTS, exact_keys, optimal_bands, signatures_numpy
from research.data.document import Record
from research.rejects import Rejects

LINE_BITS = 40
RECORD_SCHEMA = pa.schema([("pos", pa.int64()), ("source", pa.string()), ("target", pa.string())])
EXACT_DTYPE = np.dtype([("k0", "<u8"), ("k1", "<u8"), ("pos", "<i8")])
INDEX_COLUMNS = 4
"""Columns of a bucket stream's index: tokens, masked prefix, category index, pos."""


def encode_pos(file_index: int, line: int) -> int:
    return (file_index << LINE_BITS) | line


@dataclass
class Work:
    """The work folder of one run and what every task needs to find its way in it."""
    root: Path
    cfg: GraftConfig

    @property
    def plan(self) -> dict:
        if not hasattr(self, "_plan"):
            self._plan = json.loads((self.root / "plan.json").read_text(encoding="utf-8"))
        return self._plan

    @property
    def files(self) -> list:
        if not hasattr(self, "_files"):
            self._files = rd.resolve_inputs(self.cfg.data.inputs)
        return self._files

    def span(self, shard: int) -> rd.Span:
        return rd.Span(**self.plan["spans"][shard])

    @property
    def categories(self) -> list[str]:
        return self.plan["categories"]

    def uid(self, pos: int) -> str:
        return f"{self.plan['names'][pos >> LINE_BITS]}:{pos & ((1 << LINE_BITS) - 1)}"

    def path(self, *parts: str) -> Path:
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def commit(tmp: Path, final: Path) -> None:
    """Move a finished file or folder to its final name (replacing what a killed attempt left)."""
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    os.replace(tmp, final)


def tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def save_npy(path: Path, arr: np.ndarray) -> None:
    tmp = tmp_name(path)
    with open(tmp, "wb") as f:
        np.save(f, arr)
    commit(tmp, path)


def save_json(path: Path, obj) -> None:
    tmp = tmp_name(path)
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    commit(tmp, path)


def load_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def write_rejects(path: Path, rejects: Rejects) -> None:
    tmp = tmp_name(path)
    rejects.write(tmp)
    commit(tmp, path)


# ---------------------------------------------------------------------------------------------------- records

def records_task(w: Work, shard: int) -> None:
    """Read and clean one shard; write its survivors (Arrow), rejects, stats and exact-dedup keys."""
    d = w.cfg.data
    rejects = Rejects()
    span = w.span(shard)
    records, read_stats = rd.read_span(w.files, span, d.clean.max_line_bytes, rejects)
    langs = expected_langs(d.inputs)
    kept: list[Record] = []
    for b in range(0, len(records), BATCH_TEXTS):
        batch = records[b:b + BATCH_TEXTS]
        for rec, (reason, detail) in zip(batch, check_batch(batch, [langs.get(r.category, "any") for r in batch],
                                                            d.clean), strict=True):
            if reason is None:
                kept.append(rec)
            else:
                rejects.add_record("clean", rec, reason, detail=detail)
    pos = np.array([encode_pos(span.file_index, r.line) for r in kept], dtype=np.int64)
    table = pa.Table.from_arrays([pa.array(pos, pa.int64()), pa.array([r.source for r in kept], pa.string()),
                                  pa.array([r.target for r in kept], pa.string())], schema=RECORD_SCHEMA)
    out = w.path("records", f"s{shard:05d}.arrow")
    tmp = tmp_name(out)
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, RECORD_SCHEMA) as writer:
        writer.write_table(table, max_chunksize=8192)
    commit(tmp, out)
    cat = w.categories.index(w.files[span.file_index][1].category)
    if d.dedup.exact:
        keys = np.frombuffer(b"".join(k for s in range(0, len(kept), BATCH_TEXTS)
                                      for k in exact_keys([r.text for r in kept[s:s + BATCH_TEXTS]])),
                             dtype="<u8").reshape(-1, 2)
        rows = np.empty(len(kept), dtype=EXACT_DTYPE)
        rows["k0"], rows["k1"], rows["pos"] = keys[:, 0], keys[:, 1], pos
        part = keys[:, 0] % np.uint64(d.engine.partitions)
        for p in range(d.engine.partitions):
            save_npy(w.path("exact_keys", f"p{p:03d}", f"s{shard:05d}.npy"), rows[part == p])
    if span.start == 0:  # the first shard of a file hashes it, so files are hashed in parallel
        from research.contracts import sha256_file

        read_stats["sha256"] = sha256_file(w.files[span.file_index][2])
    write_rejects(w.path("records", f"s{shard:05d}.rejects.jsonl"), rejects)
    clean_reasons = rejects.reasons("clean")
    save_json(w.path("records", f"s{shard:05d}.json"), {
        "read": read_stats, "category": cat, "kept": len(kept),
        "clean": {"in": len(records), "kept": len(kept), "rejected": len(records) - len(kept),
                  "reasons": clean_reasons}})


def load_records(w: Work, shard: int) -> pa.Table:
    with pa.memory_map(str(w.root / "records" / f"s{shard:05d}.arrow")) as src:
        return pa.ipc.open_file(src).read_all()


# ------------------------------------------------------------------------------------------------------ exact

def exact_task(w: Work, part: int) -> None:
    """One hash partition: every record whose key an earlier record has is removed, naming the kept one."""
    folder = w.root / "exact_keys" / f"p{part:03d}"
    rows = np.concatenate([np.load(folder / f"s{s:05d}.npy") for s in range(len(w.plan["spans"]))])
    order = np.lexsort((rows["pos"], rows["k1"], rows["k0"]))
    rows = rows[order]
    same = np.zeros(len(rows), dtype=bool)
    same[1:] = (rows["k0"][1:] == rows["k0"][:-1]) & (rows["k1"][1:] == rows["k1"][:-1])
    first = np.maximum.accumulate(np.where(~same, np.arange(len(rows)), 0))
    removed = np.stack([rows["pos"][same], rows["pos"][first[same]]], axis=1) if len(rows) else np.zeros((0, 2))
    removed = removed[np.argsort(removed[:, 0], kind="stable")].astype(np.int64)
    save_npy(w.path("exact", f"p{part:03d}.npy"), removed)
    save_json(w.path("exact", f"p{part:03d}.json"), {"removed": int(same.sum()),
                                                    "clusters": int(len(np.unique(removed[:, 1])))})


def removed_in(arrays: list[np.ndarray], lo: int, hi: int) -> dict[int, int]:
    """pos -> kept pos of the removals (rows sorted by pos) with lo <= pos < hi, over several arrays."""
    out: dict[int, int] = {}
    for a in arrays:
        i, j = np.searchsorted(a[:, 0], [lo, hi])
        out.update(zip(a[i:j, 0].tolist(), a[i:j, 1].tolist(), strict=True))
    return out


def shard_range(w: Work, shard: int) -> tuple[int, int]:
    """[lo, hi) of the positions a shard can hold."""
    s = w.span(shard)
    nxt = w.plan["spans"][shard + 1] if shard + 1 < len(w.plan["spans"]) else None
    lo = encode_pos(s.file_index, s.first_line)
    hi = (encode_pos(nxt["file_index"], nxt["first_line"]) if nxt is not None
          else encode_pos(s.file_index + 1, 0))
    return lo, hi


def exact_removed(w: Work, shard: int) -> dict[int, int]:
    if not w.cfg.data.dedup.exact:
        return {}
    lo, hi = shard_range(w, shard)
    arrays = [np.load(w.root / "exact" / f"p{p:03d}.npy", mmap_mode="r") for p in range(w.cfg.data.engine.partitions)]
    return removed_in(arrays, lo, hi)


def exact_survivors(w: Work, shard: int) -> tuple[pa.Table, dict[int, int]]:
    table = load_records(w, shard)
    gone = exact_removed(w, shard)
    if gone:
        keep = np.fromiter((p not in gone for p in table.column("pos").to_numpy().tolist()), dtype=bool,
                           count=table.num_rows)
        table = table.filter(pa.array(keep))
    return table, gone


# ---------------------------------------------------------------------------------------------------- signals

def signals_task(w: Work, shard: int) -> None:
    """MinHash signatures, band keys and scores of one shard's exact-dedup survivors."""
    d = w.cfg.data
    table, _ = exact_survivors(w, shard)
    texts = [s + t for s, t in zip(table.column("source").to_pylist(), table.column("target").to_pylist(),
                                   strict=True)]
    out = {"pos": table.column("pos").to_numpy()}
    if d.dedup.near:
        sig = signatures_numpy(texts, d.dedup)
        bands, rows = optimal_bands(d.dedup.threshold, d.dedup.num_perm)
        keys = np.empty((len(texts), bands), dtype=np.uint64)
        for b in range(bands if len(texts) else 0):
            block = np.ascontiguousarray(sig[:, b * rows:(b + 1) * rows]).view(np.uint8).reshape(len(texts), -1)
            keys[:, b] = [int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little")
                          for r in block]
        out["sig"], out["band_keys"] = sig, keys
    if d.score.mode != "none":
        from research.data.score import build_scorer

        cat = w.categories[load_json(w.root / "records" / f"s{shard:05d}.json")["category"]]
        recs = [Record("", 0, cat, s, t) for s, t in zip(table.column("source").to_pylist(),
                                                          table.column("target").to_pylist(), strict=True)]
        out["score"] = np.array(build_scorer(d.score)(recs) if recs else [], dtype=np.float64)
    for key, arr in out.items():
        save_npy(w.path("signals", f"s{shard:05d}.{key}.npy"), arr)


# ------------------------------------------------------------------------------------------------------ bands

def bands_task(w: Work, band: int) -> None:
    """Records whose band key an earlier record has, when their estimated Jaccard reaches the threshold."""
    d = w.cfg.data
    n_shards = len(w.plan["spans"])
    keys, pos, shard_of, row_of = [], [], [], []
    for s in range(n_shards):
        k = np.load(w.root / "signals" / f"s{s:05d}.band_keys.npy", mmap_mode="r")[:, band]
        keys.append(np.asarray(k))
        pos.append(np.load(w.root / "signals" / f"s{s:05d}.pos.npy"))
        shard_of.append(np.full(len(k), s, dtype=np.int32))
        row_of.append(np.arange(len(k), dtype=np.int64))
    keys, pos = np.concatenate(keys), np.concatenate(pos)
    shard_of, row_of = np.concatenate(shard_of), np.concatenate(row_of)
    order = np.lexsort((pos, keys))
    k_sorted = keys[order]
    same = np.zeros(len(order), dtype=bool)
    same[1:] = k_sorted[1:] == k_sorted[:-1]
    first = np.maximum.accumulate(np.where(~same, np.arange(len(order)), 0))
    cand, head = order[same], order[first[same]]
    sigs = {s: np.load(w.root / "signals" / f"s{s:05d}.sig.npy", mmap_mode="r") for s in range(n_shards)}
    ok = np.zeros(len(cand), dtype=bool)
    for i, (a, b) in enumerate(zip(cand.tolist(), head.tolist(), strict=True)):
        sa, sb = sigs[int(shard_of[a])][row_of[a]], sigs[int(shard_of[b])][row_of[b]]
        ok[i] = np.mean(sa == sb) >= d.dedup.threshold
    pairs = np.stack([pos[cand[ok]], pos[head[ok]]], axis=1).astype(np.int64) if len(cand) else np.zeros((0, 2),
                                                                                                       np.int64)
    save_npy(w.path("bands", f"b{band:03d}.npy"), pairs)


# ----------------------------------------------------------------------------------------------------- decide

def decide_task(w: Work, _task: int = 0) -> None:
    """Near-duplicate clusters (the earliest record of a cluster is kept), the score filter, and the check that
    every category keeps records. Holds a few numbers per record, never text."""
    d = w.cfg.data
    n_shards = len(w.plan["spans"])
    stats = [load_json(w.root / "records" / f"s{s:05d}.json") for s in range(n_shards)]
    decisions: dict[str, np.ndarray] = {}
    dedup_stats: dict = {}
    if d.dedup.exact:
        parts = [load_json(w.root / "exact" / f"p{p:03d}.json") for p in range(d.engine.partitions)]
        dedup_stats = {"exact_removed": sum(p["removed"] for p in parts),
                       "exact_clusters": sum(p["clusters"] for p in parts)}
    signals = d.dedup.near or d.score.mode != "none"
    if signals:
        pos = np.concatenate([np.load(w.root / "signals" / f"s{s:05d}.pos.npy") for s in range(n_shards)])
        cat = np.concatenate([np.full(len(np.load(w.root / "signals" / f"s{s:05d}.pos.npy", mmap_mode="r")),
                                      stats[s]["category"], dtype=np.int32) for s in range(n_shards)])
    alive = None
    if d.dedup.near:
        pairs = np.concatenate([np.load(w.root / "bands" / f"b{b:03d}.npy")
                                for b in range(optimal_bands(d.dedup.threshold, d.dedup.num_perm)[0])])
        # union-find over the few pairs; the records are the sorted `pos` array (8 bytes each), never a dict
        ia, ib = np.searchsorted(pos, pairs[:, 0]), np.searchsorted(pos, pairs[:, 1])
        parent = np.arange(len(pos), dtype=np.int64)

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = int(parent[x])
            return x

        for a, b in zip(ia.tolist(), ib.tolist(), strict=True):
            ra, rb = find(a), find(b)
            if ra != rb:  # the earlier record (smaller index: pos order) stays the root, so it is kept
                parent[max(ra, rb)] = min(ra, rb)
        roots = parent
        while True:  # every record straight to its root, all at once
            nxt = roots[roots]
            if (nxt == roots).all():
                break
            roots = nxt
        gone = roots != np.arange(len(pos))
        decisions["near"] = np.stack([pos[gone], pos[roots[gone]]], axis=1).astype(np.int64)
        dedup_stats.update(near_removed=int(gone.sum()), near_clusters=int(len(np.unique(roots[gone]))),
                           bands_rows=list(optimal_bands(d.dedup.threshold, d.dedup.num_perm)))
        alive = ~gone
    score_stats = {"mode": d.score.mode}
    if d.score.mode != "none":
        score = np.concatenate([np.load(w.root / "signals" / f"s{s:05d}.score.npy") for s in range(n_shards)])
        alive = np.ones(len(pos), dtype=bool) if alive is None else alive
        idx = np.flatnonzero(alive)
        keep = np.zeros(len(pos), dtype=bool)
        if d.score.mode == "threshold":
            keep[idx] = score[idx] >= d.score.threshold
        else:  # top_fraction per category; ties go to the earlier record
            for c in np.unique(cat[idx]).tolist():
                members = idx[cat[idx] == c]
                n = max(1, math.ceil(d.score.top_fraction * len(members)))
                best = members[np.lexsort((pos[members], -score[members]))[:n]]
                keep[best] = True
        low = alive & ~keep
        decisions["score"] = np.stack([pos[low], score[low].view(np.int64)], axis=1)
        score_stats.update(scored=int(len(idx)), rejected=int(low.sum()),
                           mean_score=round(float(score[idx].mean()), 6) if len(idx) else None)
    for key, arr in decisions.items():
        save_npy(w.path("decide", f"{key}.npy"), arr[np.argsort(arr[:, 0], kind="stable")])
    left, removed = _left_per_category(w, stats, decisions, pos if signals else None, cat if signals else None)
    save_json(w.path("decide", "stats.json"), {"dedup": dedup_stats, "score": score_stats, "left": left,
                                               "removed": removed})


def _left_per_category(w: Work, stats: list[dict], removals: dict, pos, cat) -> tuple[dict, dict]:
    """Records left per category after dedup and score, and what removed the others (step:reason -> count)."""
    d = w.cfg.data
    left = {c: 0 for c in w.categories}
    for s in stats:
        left[w.categories[s["category"]]] += s["kept"]
    removed: dict[str, dict[str, int]] = {c: {} for c in w.categories}
    if d.dedup.exact:
        for s in range(len(stats)):
            n = len(exact_removed(w, s))
            c = w.categories[stats[s]["category"]]
            left[c] -= n
            removed[c]["dedup:exact_duplicate"] = removed[c].get("dedup:exact_duplicate", 0) + n
    for key, arr in removals.items():
        reason = "dedup:near_duplicate" if key == "near" else f"score:low_score:{d.score.scorer}"
        if len(arr):
            shard_cat = cat[np.searchsorted(pos, arr[:, 0])]
            for c, n in zip(*np.unique(shard_cat, return_counts=True), strict=True):
                left[w.categories[int(c)]] -= int(n)
                removed[w.categories[int(c)]][reason] = int(n)
    return left, removed


def decisions(w: Work, shard: int) -> dict[str, dict[int, int]]:
    lo, hi = shard_range(w, shard)
    out = {}
    for key in ("near", "score"):
        path = w.root / "decide" / f"{key}.npy"
        out[key] = removed_in([np.load(path, mmap_mode="r")], lo, hi) if path.is_file() else {}
    return out


# --------------------------------------------------------------------------------------------------- tokenize

def tokenize_task(w: Work, shard: int) -> None:
    """Drop the removed records of one shard (into its rejects file), tokenize the rest, and write one token
    stream per bucket: each document's ids, repeated by the category's weight."""
    from research.data.tokenize import special_ids, tokenize

    d, b = w.cfg.data, w.cfg.buckets
    table, gone_exact = exact_survivors(w, shard)
    dec = decisions(w, shard)
    span = w.span(shard)
    _, inp, path = w.files[span.file_index]
    name = rd.display_name(inp, path)
    category = inp.category
    rejects = Rejects()
    recs: list[Record] = []
    for p, s, t in zip(table.column("pos").to_numpy().tolist(), table.column("source").to_pylist(),
                       table.column("target").to_pylist(), strict=True):
        rec = Record(name, p & ((1 << LINE_BITS) - 1), category, s, t)
        if p in dec["near"]:
            rejects.add_record("dedup", rec, "near_duplicate", kept=w.uid(dec["near"][p]))
        elif p in dec["score"]:
            score = np.array([dec["score"][p]], dtype=np.int64).view(np.float64)[0]
            rejects.add_record("score", rec, f"low_score:{d.score.scorer}", detail=f"{score:.4f}")
        else:
            recs.append(rec)
    exact_rows = Rejects()
    if gone_exact:
        # exact duplicates: logged in line order, before near duplicates (as they are removed first)
        full = load_records(w, shard)
        for p, s, t in zip(full.column("pos").to_numpy().tolist(), full.column("source").to_pylist(),
                           full.column("target").to_pylist(), strict=True):
            if p in gone_exact:
                exact_rows.add_record("dedup", Record(name, p & ((1 << LINE_BITS) - 1), category, s, t),
                                      "exact_duplicate", kept=w.uid(gone_exact[p]))
    before = Rejects()
    before.rows = load_rejects(w.root / "records" / f"s{shard:05d}.rejects.jsonl")
    before.rows += exact_rows.rows + [r for r in rejects.rows if r["step"] == "dedup"] + \
        [r for r in rejects.rows if r["step"] == "score"]
    before.rows.sort(key=lambda row: row["line"])  # corpus order, whatever the shards: one reject per record
    write_rejects(w.path("tokens", f"s{shard:05d}", "rejects.jsonl"), before)
    tok_stats: dict = {"docs": 0, "tokens": 0, "label_tokens": 0, "backend": None, "backend_reason": None}
    per_bucket: dict[int, list] = {k: [] for k in range(b.num_bins)}
    tokens_per_bin = [0] * b.num_bins
    if recs:
        tok = _tokenizer(w.cfg.paths.tokenizer)
        special = special_ids(tok, d.tokenize, w.cfg.paths.tokenizer)
        docs, tok_stats = tokenize(recs, w.cfg.paths.tokenizer, special, d.tokenize, 1, progress=False, tok=tok)
        hashes = bk.doc_hashes(b.seed, category, [r.source for r in recs], [r.target for r in recs])
        bins, copies = bk.assign(hashes, b.num_bins, d.weights.get(category, 1.0))
        cat_index = w.categories.index(category)
        for i, (doc, rec) in enumerate(zip(docs, recs, strict=True)):
            k = int(bins[i])
            tokens_per_bin[k] += len(doc.ids)
            for _ in range(int(copies[i])):
                per_bucket[k].append((doc, encode_pos(span.file_index, rec.line), cat_index))
        tok_stats.pop("tokens_per_category", None)
    weighted = 0
    for k, items in per_bucket.items():
        ids = np.concatenate([doc.ids for doc, _, _ in items]) if items else np.zeros(0, np.int32)
        index = np.array([(len(doc.ids), doc.n_masked, c, p) for doc, p, c in items],
                         dtype=np.int64).reshape(-1, INDEX_COLUMNS)
        weighted += int(index[:, 0].sum())
        save_npy(w.path("tokens", f"s{shard:05d}", f"{bucket_name(k)}.ids.npy"), ids.astype(np.int32))
        save_npy(w.path("tokens", f"s{shard:05d}", f"{bucket_name(k)}.index.npy"), index)
    save_json(w.path("tokens", f"s{shard:05d}", "stats.json"), {
        "category": category, "records": len(recs), "tokenize": tok_stats, "tokens_per_bin": tokens_per_bin,
        "weighted_tokens": weighted,
        "dedup": {"exact_removed": len(gone_exact), "near_removed": len(dec["near"])},
        "score": {"rejected": len(dec["score"])}})


_TOKENIZERS: dict[str, object] = {}


def _tokenizer(path: str):
    """The tokenizer folder's HF tokenizer, loaded once per worker process (a worker runs many shards)."""
    from research.data.tokenize import load_tokenizer

    key = path + "".join(f"|{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in sorted(Path(path).iterdir()))
    if key not in _TOKENIZERS:
        _TOKENIZERS.clear()
        _TOKENIZERS[key] = load_tokenizer(path)
    return _TOKENIZERS[key]


def load_rejects(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ------------------------------------------------------------------------------------------------------- pack

def bucket_stream(w: Work, k: int):
    """The documents of bucket k in corpus order: (ids, masked prefix, category index), shard by shard."""
    for s in range(len(w.plan["spans"])):
        folder = w.root / "tokens" / f"s{s:05d}"
        ids = np.load(folder / f"{bucket_name(k)}.ids.npy", mmap_mode="r")
        index = np.load(folder / f"{bucket_name(k)}.index.npy")
        ends = np.cumsum(index[:, 0])
        for (n, masked, cat, _), e in zip(index.tolist(), ends.tolist(), strict=True):
            yield np.asarray(ids[e - n:e]), masked, cat


def pack_task(w: Work, k: int) -> None:
    """Pack bucket k window by window (best fit decreasing; the least-filled pack of a window moves on to the
    next); each window's packs are one Arrow file; the last window's least-filled pack is left over, for the
    finishing step to place (research/data/prepare.py)."""
    from research.data.pack import chunk_docs, pack_bucket
    from research.data.tokenize import Doc

    d, b = w.cfg.data, w.cfg.buckets
    L, pad = d.max_length, w.plan["pad"]
    budget = d.pack.window_packs * L
    folder = w.path("packs", bucket_name(k), "x").parent
    cats = w.categories
    carry_docs: list = []
    carry: list = []
    window, n_tokens, n_windows = [], 0, 0
    files: dict[str, str] = {}
    per_cat: dict[str, int] = {}
    totals = {"chunks": 0, "split_docs": 0, "dropped_masked_chunks": 0, "dropped_masked_tokens": 0,
              "docs": 0, "tokens_in": 0, "packs": 0, "real_tokens": 0, "slots": 0, "windows": 0}

    def flush(last: bool):
        nonlocal carry_docs, carry, window, n_tokens, n_windows
        docs = carry_docs + window
        chunks, cstats = chunk_docs(docs, L, list(range(len(carry_docs), len(docs))))
        for key in ("chunks", "split_docs", "dropped_masked_chunks", "dropped_masked_tokens"):
            totals[key] += cstats[key]
        rng = np.random.default_rng([b.seed, k, n_windows]) if d.pack.shuffle else None
        packs, out = pack_bucket(docs, carry, chunks, L, pad, rng, carry_out=True)
        if len(packs.num_tokens):
            files[f"data-{n_windows:05d}.arrow"] = write_window(folder, n_windows, packs)
            for c, n in tokens_per_category(packs).items():
                per_cat[c] = per_cat.get(c, 0) + n
            totals["packs"] += len(packs.num_tokens)
            totals["real_tokens"] += int(packs.num_tokens.sum())
            totals["slots"] += packs.input_ids.size
            n_windows += 1
        keep = sorted({c.doc for c in out})
        remap = {old: new for new, old in enumerate(keep)}
        carry_docs = [docs[i] for i in keep]
        carry = [type(c)(remap[c.doc], c.start, c.end) for c in out]
        window, n_tokens = [], 0

    for ids, masked, cat in bucket_stream(w, k):
        window.append(Doc(ids, masked, cats[cat]))
        totals["docs"] += 1
        totals["tokens_in"] += len(ids)
        n_tokens += len(ids)
        if n_tokens >= budget:
            flush(last=False)
    if window or carry:
        flush(last=True)
    # what is left: the chunks of the last window's least-filled pack, each as a document of its own
    left_ids = [np.asarray(carry_docs[c.doc].ids[c.start:c.end]) for c in carry]
    left = np.array([(len(c), min(max(carry_docs[c.doc].n_masked - c.start, 0), len(c)),
                      cats.index(carry_docs[c.doc].category)) for c in carry], dtype=np.int64).reshape(-1, 3)
    save_npy(w.path("packs", f"{bucket_name(k)}.left_ids.npy"),
             np.concatenate(left_ids).astype(np.int32) if left_ids else np.zeros(0, np.int32))
    save_npy(w.path("packs", f"{bucket_name(k)}.left_index.npy"), left)
    totals["windows"] = n_windows
    totals["tokens_per_category"] = dict(sorted(per_cat.items()))
    totals["files"] = files
    save_json(w.path("packs", f"{bucket_name(k)}.json"), totals)


def tokens_per_category(packs) -> dict[str, int]:
    """category -> real tokens in the packs, in name order."""
    per_cat: dict[str, int] = {}
    for lens, cats in zip(packs.doc_lens, packs.doc_categories, strict=True):
        for n, c in zip(lens, cats, strict=True):
            per_cat[c] = per_cat.get(c, 0) + n
    return dict(sorted(per_cat.items()))


def write_window(folder: Path, n: int, packs) -> str:
    """One window's packs as `data-{n:05d}.arrow`, written by `datasets` itself (stream format and metadata);
    returns the file's sha256."""
    from research.contracts import save_bucket, sha256_file
    from research.data.bins import packs_table

    tmp = folder / f".window-{n:05d}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    save_bucket(packs_table(packs), tmp)
    arrow = [f for f in tmp.iterdir() if f.suffix == ".arrow"]
    assert len(arrow) == 1, arrow
    digest = sha256_file(arrow[0])
    commit(arrow[0], folder / f"data-{n:05d}.arrow")
    shutil.copyfile(tmp / "dataset_info.json", folder / "dataset_info.json")
    shutil.rmtree(tmp)
    return digest


STAGE_TASKS = {"records": records_task, "exact": exact_task, "signals": signals_task, "bands": bands_task,
               "decide": decide_task, "tokenize": tokenize_task, "pack": pack_task}
"""stage name -> what one task of it does (given the work folder and the task's index)."""


def bucket_dir(out: Path, k: int) -> Path:
    return out / BUCKETS_DIR / bucket_name(k)
