"""The whole data pipeline into one folder: read -> clean -> dedup -> score -> tokenize -> bins -> pack -> buckets.

Everything written except summary.json (which holds timings) depends only on the config and the input bytes,
so two runs give byte-identical outputs.
"""

import logging
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from research.config.root import GraftConfig
from research.contracts import bucket_name, sha256_file, write_manifest
from research.data import bins as bk
from research.data.clean import clean, expected_langs
from research.data.dedup import dedup
from research.data.pack import chunk_docs, pack_bucket
from research.data.read import read_inputs, resolve_inputs
from research.data.score import build_scorer, score_filter
from research.data.tokenize import load_tokenizer, special_ids, tokenize
from research.rejects import Rejects
from research.runinfo import versions

log = logging.getLogger("graft.data")
EXTRA_PACKAGES = ("datasketch", "tokenizers", "tqdm", "scipy")


def prepare(cfg: GraftConfig, raw: DictConfig, out: Path, tokenizer_path: str, progress: bool = True) -> dict:
    """Write buckets/, rejects.jsonl and manifest.json under `out`; return the summary's key figures."""
    d, b = cfg.data, cfg.buckets
    # Everything that can fail on the user's side is checked before any work starts.
    files = resolve_inputs(d.inputs)
    tok = load_tokenizer(tokenizer_path)
    special = special_ids(tok, d.tokenize, tokenizer_path)
    build_scorer(d.score)
    import datasets  # noqa: F401 - imported before the timed steps, as any library's import is

    timings: dict[str, float] = {}
    rejects = Rejects()
    t = time.perf_counter()
    records, read_stats = read_inputs(d.inputs, d.clean.max_line_bytes, rejects)
    timings["read"] = time.perf_counter() - t
    n_in = read_stats["records"] + read_stats["rejected"]

    t = time.perf_counter()
    records, clean_stats = clean(records, expected_langs(d.inputs), d.clean, rejects, progress)
    timings["clean"] = time.perf_counter() - t
    t = time.perf_counter()
    records, dedup_stats = dedup(records, d.dedup, rejects, progress)
    timings["dedup"] = time.perf_counter() - t
    t = time.perf_counter()
    records, score_stats = score_filter(records, d.score, rejects)
    timings["score"] = time.perf_counter() - t
    # records in = kept + rejected, over the whole pipeline
    assert n_in == len(records) + len(rejects.rows), (n_in, len(records), len(rejects.rows))

    t = time.perf_counter()
    docs, tok_stats = tokenize(records, tokenizer_path, special, d.tokenize, d.num_workers, progress, tok=tok)
    timings["tokenize"] = time.perf_counter() - t

    t = time.perf_counter()
    bins = bk.assign_bins(docs, b.num_bins, b.seed)
    members = bk.bucket_docs(bins, d.weights, b.num_bins, b.seed)
    bucket_rows, pack_totals = [], {"chunks": 0, "split_docs": 0, "dropped_masked_chunks": 0,
                                    "dropped_masked_tokens": 0, "packs": 0, "real_tokens": 0, "slots": 0,
                                    "carried_chunks": 0, "carried_tokens": 0}
    tokens_weighted = 0
    (out / "buckets").mkdir()
    carry: list = []
    for k, idx in enumerate(members):
        tokens_weighted += sum(len(docs[i].ids) for i in idx)
        chunks, cstats = chunk_docs(docs, d.max_length, idx)
        rng = np.random.default_rng([b.seed, k]) if d.pack.shuffle else None
        carried_in = carry
        packs, carry = pack_bucket(docs, carried_in, chunks, d.max_length, special.pad, rng,
                                   carry_out=d.pack.carry_over and k + 1 < len(members))
        name = bucket_name(k)
        bk.save_bucket(packs, out / "buckets" / name)
        per_cat: dict[str, int] = {}
        for lens, cats in zip(packs.doc_lens, packs.doc_categories, strict=False):
            for n, c in zip(lens, cats, strict=False):
                per_cat[c] = per_cat.get(c, 0) + n
        real, slots = int(packs.num_tokens.sum()), packs.input_ids.size
        for key in ("chunks", "split_docs", "dropped_masked_chunks", "dropped_masked_tokens"):
            pack_totals[key] += cstats[key]
        pack_totals["packs"] += len(packs.num_tokens)
        pack_totals["real_tokens"] += real
        pack_totals["slots"] += slots
        pack_totals["carried_chunks"] += len(carry)
        pack_totals["carried_tokens"] += sum(len(c) for c in carry)
        bucket_rows.append({"name": name, "path": f"buckets/{name}", "num_packs": len(packs.num_tokens),
                            "num_docs": len(idx), "tokens": real,
                            "tokens_per_category": dict(sorted(per_cat.items())),
                            "padding_fraction": round(1 - real / slots, 6) if slots else 0.0,
                            "carried_in": {"chunks": len(carried_in), "tokens": sum(len(c) for c in carried_in)},
                            "carried_out": {"chunks": len(carry), "tokens": sum(len(c) for c in carry)}})
    assert not carry
    # no token lost: packed tokens = weighted document tokens - tokens of all-masked chunks dropped on purpose
    assert pack_totals["real_tokens"] == tokens_weighted - pack_totals["dropped_masked_tokens"]
    slots = pack_totals["slots"]
    pack_totals["padding_fraction"] = round(1 - pack_totals["real_tokens"] / slots, 6) if slots else 0.0
    pack_totals["packing_efficiency"] = round(pack_totals["real_tokens"] / slots, 6) if slots else 0.0
    timings["pack_and_write"] = time.perf_counter() - t

    rejects.write(out / "rejects.jsonl")
    categories = sorted({inp.category for inp in d.inputs})
    bin_stats = {cat: [sum(len(docs[i].ids) for i in bn) for bn in bins.get(cat, [])] for cat in categories}
    manifest = {
        "max_length": d.max_length,
        "pad_token_id": special.pad,
        "bos_token_id": special.bos,
        "eos_token_id": special.eos,
        "num_buckets": b.num_bins,
        "packing": ("per bucket: bucket k packs bin k of every category together (best-fit decreasing)"
                    + ("; the least-filled pack's chunks move on to bucket k+1" if d.pack.carry_over else "")),
        "buckets": bucket_rows,
        "categories": categories,
        "weights": dict(sorted(d.weights.items())),
        "records": {"in": n_in, "kept": len(records), "rejected": len(rejects.rows)},
        "steps": {"read": read_stats, "clean": clean_stats, "dedup": dedup_stats, "score": score_stats,
                  "tokenize": tok_stats, "bins": {"tokens_per_bin": bin_stats,
                                                  "weighted_tokens": tokens_weighted}, "pack": pack_totals},
        "config": OmegaConf.to_container(raw, resolve=True),
        "versions": versions(EXTRA_PACKAGES),
        "hashes": {
            "inputs": {str(p): sha256_file(p) for _, _, p in files},
            "tokenizer": {f.name: sha256_file(f) for f in sorted(Path(tokenizer_path).iterdir()) if f.is_file()},
            "outputs": {str(f.relative_to(out)): sha256_file(f)
                        for f in sorted(out.rglob("*")) if f.is_file()},
        },
    }
    write_manifest(out, manifest)
    tokens = tok_stats["tokens"]
    return {
        "records_in": n_in, "records_kept": len(records), "records_rejected": len(rejects.rows),
        "tokens": tokens, "packs": pack_totals["packs"], "packing_efficiency": pack_totals["packing_efficiency"],
        "num_buckets": b.num_bins, "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "tokens_per_s": round(tokens / max(sum(timings.values()), 1e-9), 1),
    }
