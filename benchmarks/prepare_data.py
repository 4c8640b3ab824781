"""Throughput and packing efficiency of `prepare_data`, against the straightforward approach in the same run.

    python benchmarks/prepare_data.py [--workers 2] [--out benchmarks/results/prepare_data.csv]

Builds the demo corpus and a 32,000-piece LLaMA-format tokenizer (mistral-common's SentencePiece model) from
installed packages, runs the whole pipeline, then runs the reference's approach on the very documents our
pipeline kept after scoring: `datasets.map` tokenization (one sample per call, num_proc = workers), greedy
in-order concatenation into max_length blocks (a sample that does not fit closes the block; a sample longer
than a block is cut; the last partial block is dropped), written with `save_to_disk`. Also times MinHash
signatures + LSH with datasketch and with our numpy implementation on the cleaned texts.
"""

import argparse
import csv
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build_tokenizer(out: Path) -> Path:
    from transformers import LlamaTokenizerFast

    model = Path(list(importlib.util.find_spec("mistral_common").submodule_search_locations)[0]) / "data/tokenizer.model.v1"
    LlamaTokenizerFast(vocab_file=str(model), from_slow=True, legacy=False, add_prefix_space=True,
                       pad_token="<unk>").save_pretrained(str(out))
    return out


def run_ours(run_root: Path, tokenizer: Path, workers: int, max_length: int):
    from hydra import compose, initialize_config_dir

    from research.atomic import atomic_dir
    from research.config import to_object
    from research.data import prepare as pipeline

    overrides = [f"run_root={run_root}", f"paths.tokenizer={tokenizer}", f"data.num_workers={workers}",
                 f"data.max_length={max_length}"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        raw = compose("prepare_data", overrides=overrides)
    cfg = to_object(raw)
    kept = {}
    score_filter, dedup = pipeline.score_filter, pipeline.dedup

    def spy(records, *a, **kw):  # keep the post-score records: the baseline tokenizes exactly these
        out = score_filter(records, *a, **kw)
        kept["records"] = out[0]
        return out

    def spy_dedup(records, *a, **kw):  # and the dedup step's input, for the MinHash comparison
        kept["dedup_in"] = list(records)
        return dedup(records, *a, **kw)

    pipeline.score_filter, pipeline.dedup = spy, spy_dedup
    t0 = time.perf_counter()
    with atomic_dir(cfg.out_dir) as tmp:
        summary = pipeline.prepare(cfg, raw, Path(tmp), str(tokenizer), progress=False)
    wall = time.perf_counter() - t0
    pipeline.score_filter, pipeline.dedup = score_filter, dedup
    manifest = json.loads((Path(cfg.out_dir) / "manifest.json").read_text())
    return summary, manifest, kept, wall


def run_reference(records, tokenizer: Path, workers: int, max_length: int, work: Path) -> dict:
    import datasets
    from transformers import AutoTokenizer

    datasets.disable_progress_bars()
    src = work / "kept.jsonl"
    with open(src, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({"source": r.source, "target": r.target, "category": r.category}, ensure_ascii=False) + "\n")
    tok = AutoTokenizer.from_pretrained(str(tokenizer), use_fast=True)

    def tokenize_one(sample):
        s = tok.encode(sample["source"], add_special_tokens=False) if sample["source"] else []
        t = tok.encode(sample["target"], add_special_tokens=False)
        ids = [tok.bos_token_id] + s + t + [tok.eos_token_id]
        return {"input_ids": ids, "labels": [-100] * (1 + len(s)) + t + [tok.eos_token_id]}

    t0 = time.perf_counter()
    ds = datasets.load_dataset("json", data_files=str(src), split="train", cache_dir=str(work / "cache"))
    ds = ds.map(tokenize_one, num_proc=workers, remove_columns=ds.column_names)
    t_tok = time.perf_counter() - t0
    total = sum(len(x) for x in ds["input_ids"])
    blocks, cur_ids, cur_labels, lost, lost_records = [], [], [], 0, 0
    for ids, labels in zip(ds["input_ids"], ds["labels"], strict=False):
        if len(ids) > max_length:
            lost += len(ids) - max_length
            ids, labels = ids[:max_length], labels[:max_length]
        if len(cur_ids) + len(ids) > max_length:
            pad = max_length - len(cur_ids)
            blocks.append({"input_ids": cur_ids + [tok.pad_token_id] * pad, "labels": cur_labels + [-100] * pad})
            cur_ids, cur_labels = [], []
        cur_ids, cur_labels = cur_ids + ids, cur_labels + labels
    if cur_ids:  # the reference drops the last partial block
        lost += len(cur_ids)
        lost_records += 1
    datasets.Dataset.from_list(blocks).save_to_disk(str(work / "reference_out"))
    wall = time.perf_counter() - t0
    packed = total - lost
    return {"tokens": total, "seconds": wall, "tokenize_s": t_tok, "packs": len(blocks), "lost_tokens": lost,
            "efficiency": packed / (len(blocks) * max_length) if blocks else 0.0}


def run_tokenize_backends(records, tokenizer: Path, workers: int) -> list:
    """The tokenize step alone on the kept records, with each backend (same ids: tests/data/test_tokenize.py)."""
    from research.config.data import TokenizeConfig
    from research.data.tokenize import load_tokenizer, special_ids, tokenize

    tok = load_tokenizer(str(tokenizer))
    special = special_ids(tok, TokenizeConfig(), str(tokenizer))
    rows = []
    for backend in ("sentencepiece", "hf"):
        t0 = time.perf_counter()
        _, stats = tokenize(records, str(tokenizer), special, TokenizeConfig(backend=backend), workers,
                            progress=False, tok=tok)
        rows.append((f"tokenize only: {backend}", stats["tokens"], time.perf_counter() - t0))
    return rows


def run_minhash(records) -> list:
    from research.config.data import DedupConfig
    from research.data.dedup import near_clusters_datasketch, near_clusters_numpy

    texts = [r.text for r in records]
    rows = []
    for name, fn in (("numpy", near_clusters_numpy), ("datasketch", near_clusters_datasketch)):
        t0 = time.perf_counter()
        roots = fn(texts, DedupConfig())
        dt = time.perf_counter() - t0
        rows.append({"impl": name, "docs": len(texts), "seconds": dt,
                     "near_dups": sum(1 for i, r in enumerate(roots) if r != i)})
        del roots
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/prepare_data.csv"))
    args = ap.parse_args()
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

    from research.data.demo_corpus import build_demo_corpus

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tokenizer = build_tokenizer(work / "tokenizer")
        build_demo_corpus(work / "inputs" / "corpus", args.seed)
        summary, manifest, kept, wall = run_ours(work, tokenizer, args.workers, args.max_length)
        ref = run_reference(kept["records"], tokenizer, args.workers, args.max_length, work)
        tok_rows = run_tokenize_backends(kept["records"], tokenizer, args.workers)
        # on the dedup step's own input (cleaned records), exact duplicates included
        mh = run_minhash(kept["dedup_in"])

    tokens = summary["tokens"]
    t = summary["timings_s"]
    same_work = t["tokenize"] + t["pack_and_write"]
    pack = manifest["steps"]["pack"]
    rows = [
        ("graft: whole pipeline (read..buckets)", tokens, sum(t.values()), pack["packing_efficiency"], 0),
        ("graft: tokenize + pack + write", tokens, same_work, pack["packing_efficiency"], 0),
    ] + [(f"graft: step {k}", tokens, v, None, None) for k, v in t.items()] + [
        ("reference: map + greedy concat + write", ref["tokens"], ref["seconds"], ref["efficiency"],
         ref["lost_tokens"]),
    ] + [(name, n, s, None, None) for name, n, s in tok_rows]
    speedup = (tokens / same_work) / (ref["tokens"] / ref["seconds"])
    print(f"\ncorpus: {manifest['records']['in']} records in, {manifest['records']['kept']} kept, {tokens} tokens; "
          f"workers={args.workers}, max_length={args.max_length}, cpus={os.cpu_count()}, "
          f"load average before/after {load_before:.1f}/{os.getloadavg()[0]:.1f}, "
          f"tokenizer backend {manifest['steps']['tokenize']['backend']}, "
          f"carried {pack['carried_tokens']} tokens ({pack['carried_chunks']} chunks) to the next bucket")
    print(f"{'what':44s} {'tokens':>10s} {'seconds':>8s} {'tokens/s':>10s} {'pack eff.':>9s} {'lost tok.':>9s}")
    for name, n, s, eff, lost in rows:
        print(f"{name:44s} {n:10d} {s:8.2f} {n / max(s, 1e-9):10.0f} "
              f"{'' if eff is None else f'{eff:.4f}':>9s} {'' if lost is None else lost:>9}")
    print(f"speed-up (tokenize+pack+write vs reference): {speedup:.2f}x")
    print(f"\n{'minhash impl':12s} {'docs':>6s} {'seconds':>8s} {'docs/s':>8s} {'near dups':>9s}")
    for r in mh:
        print(f"{r['impl']:12s} {r['docs']:6d} {r['seconds']:8.2f} {r['docs'] / r['seconds']:8.0f} {r['near_dups']:9d}")

    versions = {k: importlib.metadata.version(k) for k in ("transformers", "tokenizers", "sentencepiece", "datasets",
                                                             "datasketch", "numpy")}
    device = f"cpu x{os.cpu_count()} ({platform.machine()}), load {load_before:.1f}"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with open(out, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["time", "device", "workers", "max_length", "what", "tokens", "seconds", "tokens_per_s",
                        "packing_efficiency", "lost_tokens", "versions"])
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        for name, n, s, eff, lost in rows:
            w.writerow([stamp, device, args.workers, args.max_length, name, n, round(s, 3), round(n / max(s, 1e-9)),
                        "" if eff is None else round(eff, 6), "" if lost is None else lost, json.dumps(versions)])
        for r in mh:
            w.writerow([stamp, device, args.workers, args.max_length, f"minhash {r['impl']} ({r['near_dups']} near dups)",
                        r["docs"], round(r["seconds"], 3), "", "", "", json.dumps(versions)])


if __name__ == "__main__":
    main()
