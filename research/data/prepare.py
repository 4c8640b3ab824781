"""The whole data pipeline into one folder: read -> clean -> dedup -> score -> tokenize -> bins -> pack -> buckets.

The corpus is cut into shards (research/data/read.py `plan_spans`) and the steps run as sharded stages on
datatrove's executors (research/data/stages.py, research/data/engine.py), so memory per worker does not grow with
the corpus and the same config runs on local processes, Slurm or Ray. Everything written except summary.json and
config.yaml (which say how the run was run: workers, shards, timings) depends only on the config and the input
bytes: not on `data.num_workers`, nor on `data.engine.shard_mb`.

`prepare` checks the inputs (before any work), runs the stages in a work folder beside `out_dir`
(`.<name>.work`), checks that every category kept records, finishes the buckets (the packs carried between
buckets), and writes buckets/, rejects.jsonl and manifest.json. A killed run leaves the work folder; the same
command then reuses every finished task (another config or changed inputs start it afresh). `run` is the
prepare_data stage (`python -m research.prepare_data`): `prepare` into out_dir atomically, then config.yaml and
summary.json.
"""

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from research.atomic import atomic_dir
from research.config.root import GraftConfig
from research.contracts import BUCKETS_DIR, bucket_name, sha256_file, write_manifest
from research.data import engine
from research.data import stages as st
from research.data.dedup import optimal_bands
from research.data.pack import best_fit_decreasing, chunk_docs, materialise, split_off_partial
from research.data.read import display_name, plan_spans, resolve_inputs
from research.data.score import build_scorer
from research.data.tokenize import Doc, SpecialIds, load_tokenizer, special_ids
from research.errors import GraftError
from research.runinfo import versions, write_run_files

log = logging.getLogger("graft.data")
stage_log = logging.getLogger("graft")
EXTRA_PACKAGES = ("datasketch", "datatrove", "tokenizers", "tqdm", "scipy", "zstandard")
CHUNK_COUNTS = ("chunks", "split_docs", "dropped_masked_chunks", "dropped_masked_tokens")
"""The counts of `chunk_docs` summed over buckets into the manifest's steps.pack."""
RUN_KEYS = ("num_workers", "engine")
"""data.* keys that say how a run runs, not what it produces: left out of the manifest and the resume key."""


@dataclass
class PrepareRun:
    """What one `prepare` call shares: the checked inputs, the work folder, timings and warnings."""
    cfg: GraftConfig
    out: Path
    work: Path
    tokenizer_path: str
    progress: bool
    files: list
    """(input index, input, file) of every file to read."""
    special: SpecialIds
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    """Problems that did not stop the run, in the order met (the manifest's `warnings`)."""

    def warn(self, message: str) -> None:
        log.warning("%s", message)
        self.warnings.append(message)


def work_dir(out_dir) -> Path:
    out = Path(out_dir)
    return out.parent / f".{out.name}.work"


def run(cfg: GraftConfig, raw: DictConfig) -> dict:
    """The prepare_data stage: the prepared dataset in `out_dir`, atomically; return the summary."""
    with atomic_dir(cfg.out_dir, cfg.overwrite) as tmp:
        summary = prepare(cfg, raw, Path(tmp), cfg.paths.tokenizer)
        write_run_files(tmp, raw, summary)
    if not cfg.data.engine.keep_work:
        shutil.rmtree(work_dir(cfg.out_dir), ignore_errors=True)
    stage_log.info("prepare_data: %s packs, %s tokens, efficiency %.4f -> %s", summary["packs"], summary["tokens"],
                   summary["packing_efficiency"], cfg.out_dir)
    return summary


def prepare(cfg: GraftConfig, raw: DictConfig, out: Path, tokenizer_path: str, progress: bool = True,
            work: Path | None = None) -> dict:
    """Write buckets/, rejects.jsonl and manifest.json under `out`; return the summary's key figures."""
    r = check_inputs(cfg, out, tokenizer_path, progress, work or work_dir(cfg.out_dir))
    spans = start_work(r, raw)
    d = cfg.data
    n = len(spans)
    shard_names = [f"{display_name(inp, path)} from line {s.first_line}"
                   for s in spans for _, inp, path in [r.files[s.file_index]]]
    first = [("records", n, shard_names)]
    if d.dedup.exact:
        first.append(("exact", d.engine.partitions, [f"hash partition {p}" for p in range(d.engine.partitions)]))
    if d.dedup.near or d.score.mode != "none":
        first.append(("signals", n, shard_names))
    if d.dedup.near:
        bands = optimal_bands(d.dedup.threshold, d.dedup.num_perm)[0]
        first.append(("bands", bands, [f"LSH band {b}" for b in range(bands)]))
    first.append(("decide", 1, ["near-duplicate clusters and the score filter"]))
    r.timings.update(engine.run_stages(cfg, r.work, first, progress))
    warn_empty_files(r)
    try:
        check_categories(r)
    except GraftError:  # the inputs must change, and with them the work: nothing to resume
        shutil.rmtree(r.work, ignore_errors=True)
        raise
    second = [("tokenize", n, shard_names),
              ("pack", cfg.buckets.num_bins, [bucket_name(k) for k in range(cfg.buckets.num_bins)])]
    r.timings.update(engine.run_stages(cfg, r.work, second, progress))
    t = time.perf_counter()
    rows, pack_stats = finish_buckets(r)
    write_rejects(r, n)
    manifest = build_manifest(r, raw, n, rows, pack_stats)
    write_manifest(out, manifest)
    r.timings["finish"] = time.perf_counter() - t
    return summary(r, manifest, n)


def check_inputs(cfg: GraftConfig, out: Path, tokenizer_path: str, progress: bool, work: Path) -> PrepareRun:
    """Everything that can fail on the user's side, checked before any work starts."""
    files = resolve_inputs(cfg.data.inputs)
    if not cfg.data.allow_empty:
        for cat, paths in _files_per_category(files).items():
            if all(p.stat().st_size == 0 for p in paths):
                raise GraftError(f"data: every input file of category {cat!r} is empty "
                                 f"({', '.join(map(str, paths))}); fix its inputs or set data.allow_empty=true")
    tok = load_tokenizer(tokenizer_path)
    special = special_ids(tok, cfg.data.tokenize, tokenizer_path)
    if cfg.data.score.mode != "none":
        build_scorer(cfg.data.score)
    return PrepareRun(cfg, out, Path(work), tokenizer_path, progress, files, special)


def _files_per_category(files: list) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for _, inp, path in files:
        out.setdefault(inp.category, []).append(path)
    return out


def _what_it_makes(r: PrepareRun, raw: DictConfig) -> dict:
    """The config and inputs the outputs depend on (the manifest's `config`, and the resume key)."""
    config = OmegaConf.to_container(raw, resolve=True)
    for key in RUN_KEYS:
        config.get("data", {}).pop(key, None)
    return config


def start_work(r: PrepareRun, raw: DictConfig) -> list:
    """The shard plan, in a work folder that a killed run with the same config and inputs left, or a new one."""
    spans = plan_spans(r.files, int(r.cfg.data.engine.shard_mb * (1 << 20)))
    key = {"config": _what_it_makes(r, raw),
           "inputs": [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for _, _, p in r.files],
           "tokenizer": {f.name: sha256_file(f) for f in sorted(Path(r.tokenizer_path).iterdir()) if f.is_file()},
           "spans": [asdict(s) for s in spans], "partitions": r.cfg.data.engine.partitions}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    plan_file = r.work / "plan.json"
    if plan_file.is_file():
        try:
            same = json.loads(plan_file.read_text(encoding="utf-8")).get("key") == digest
        except ValueError:
            same = False
        if same:
            log.info("prepare_data: resuming the unfinished run in %s", r.work)
            return spans
        log.info("prepare_data: %s holds an unfinished run of another config or inputs; starting afresh", r.work)
    shutil.rmtree(r.work, ignore_errors=True)
    r.work.mkdir(parents=True)
    categories = sorted({inp.category for inp in r.cfg.data.inputs})
    st.save_json(plan_file, {
        "key": digest, "names": [display_name(inp, p) for _, inp, p in r.files], "categories": categories,
        "spans": [asdict(s) for s in spans], "pad": r.special.pad})
    return spans


def warn_empty_files(r: PrepareRun) -> None:
    """A warning per input file with no non-blank line (over all its shards)."""
    spans = st.load_json(r.work / "plan.json")["spans"]
    content: dict[int, int] = {}
    for s, span in enumerate(spans):
        x = st.load_json(r.work / "records" / f"s{s:05d}.json")
        content[span["file_index"]] = content.get(span["file_index"], 0) + x["read"]["content_lines"]
    for fi, (_, inp, path) in enumerate(r.files):
        if content.get(fi, 0) == 0:
            r.warn(f"{display_name(inp, path)}: empty input file (no non-blank line), category {inp.category!r}")


def check_categories(r: PrepareRun) -> None:
    """A category with no record left after score is an error naming it and its main reject reasons (a warning
    with data.allow_empty=true); no record left at all is always an error."""
    stats = st.load_json(r.work / "decide" / "stats.json")
    reasons = {c: dict(v) for c, v in stats["removed"].items()}
    for s in sorted((r.work / "records").glob("s*.rejects.jsonl")):
        for row in st.load_rejects(s):
            cat = _category_of(r, row["file"])
            key = f"{row['step']}:{row['reason']}"
            reasons[cat][key] = reasons[cat].get(key, 0) + 1
    for cat in sorted(stats["left"]):
        if stats["left"][cat] > 0:
            continue
        top = sorted(((k, n) for k, n in reasons[cat].items() if n), key=lambda kv: (-kv[1], kv[0]))[:3]
        total = sum(reasons[cat].values())
        why = (f"{total} rejected, most as {', '.join(f'{k} ({n})' for k, n in top)}" if top
               else "its input files hold no records")
        message = f"data: category {cat!r} has no records left after read, clean, dedup and score ({why})"
        if not r.cfg.data.allow_empty:
            raise GraftError(f"{message}; fix its inputs or set data.allow_empty=true")
        r.warn(message)
    if not any(stats["left"].values()):
        raise GraftError("data: no records left in any category after read, clean, dedup and score: nothing to "
                         "pack")


def _category_of(r: PrepareRun, name: str) -> str:
    if not hasattr(r, "_cats"):
        r._cats = {display_name(inp, p): inp.category for _, inp, p in r.files}
    return r._cats[name]


def finish_buckets(r: PrepareRun) -> tuple[list[dict], dict]:
    """Place the chunks each bucket's last window left over (with carry-over, the least-filled pack of bucket k
    moves on to bucket k+1, so only the last bucket ends with a partly empty pack), write each bucket's
    `state.json`, and move the buckets into the output. Returns the manifest's bucket rows and pack totals."""
    d, b = r.cfg.data, r.cfg.buckets
    cats = st.load_json(r.work / "plan.json")["categories"]
    (r.out / BUCKETS_DIR).mkdir()
    rows, carry_docs = [], []
    totals = {key: 0 for key in CHUNK_COUNTS} | {"packs": 0, "real_tokens": 0, "slots": 0, "windows": 0,
                                                 "carried_chunks": 0, "carried_tokens": 0}
    weighted = 0
    for k in range(b.num_bins):
        name = bucket_name(k)
        folder = r.work / "packs" / name
        folder.mkdir(parents=True, exist_ok=True)
        ps = st.load_json(r.work / "packs" / f"{name}.json")
        left_ids = np.load(r.work / "packs" / f"{name}.left_ids.npy")
        left_index = np.load(r.work / "packs" / f"{name}.left_index.npy")
        ends = np.cumsum(left_index[:, 0]) if len(left_index) else np.zeros(0, np.int64)
        own = [Doc(left_ids[e - n:e], masked, cats[c]) for (n, masked, c), e in
               zip(left_index.tolist(), ends.tolist(), strict=True)]
        docs = carry_docs + own
        carried_in = {"chunks": len(carry_docs), "tokens": sum(len(x.ids) for x in carry_docs)}
        chunks, _ = chunk_docs(docs, d.max_length)
        lengths = [len(c) for c in chunks]
        bins = best_fit_decreasing(lengths, d.max_length, first=len(carry_docs)) if chunks else []
        out = []
        if d.pack.carry_over and k + 1 < b.num_bins:
            bins, out = split_off_partial(bins, lengths, d.max_length, pinned=len(carry_docs))
        files = dict(ps["files"])
        per_cat = dict(ps["tokens_per_category"])
        real, slots, n_packs = ps["real_tokens"], ps["slots"], ps["packs"]
        if bins:
            rng = np.random.default_rng([b.seed, k, 1 << 20]) if d.pack.shuffle else None
            packs = materialise(docs, chunks, bins, d.max_length, r.special.pad, rng)
            files[f"data-{ps['windows']:05d}.arrow"] = st.write_window(folder, ps["windows"], packs)
            for c, n in st.tokens_per_category(packs).items():
                per_cat[c] = per_cat.get(c, 0) + n
            real += int(packs.num_tokens.sum())
            slots += packs.input_ids.size
            n_packs += len(packs.num_tokens)
        carry_docs = [docs[chunks[i].doc] for i in out]
        carried_out = {"chunks": len(carry_docs), "tokens": sum(len(x.ids) for x in carry_docs)}
        write_state(folder, sorted(files), files)
        files["state.json"] = sha256_file(folder / "state.json")
        files["dataset_info.json"] = sha256_file(folder / "dataset_info.json")
        shutil.move(str(folder), str(r.out / BUCKETS_DIR / name))
        for key in CHUNK_COUNTS:
            totals[key] += ps[key]
        totals["packs"] += n_packs
        totals["real_tokens"] += real
        totals["slots"] += slots
        totals["windows"] += ps["windows"] + (1 if bins else 0)
        totals["carried_chunks"] += carried_out["chunks"]
        totals["carried_tokens"] += carried_out["tokens"]
        weighted += ps["tokens_in"]
        rows.append({"name": name, "path": f"{BUCKETS_DIR}/{name}", "num_packs": n_packs, "num_docs": ps["docs"],
                     "tokens": real, "tokens_per_category": dict(sorted(per_cat.items())),
                     "padding_fraction": round(1 - real / slots, 6) if slots else 0.0,
                     "files": len([f for f in files if f.endswith(".arrow")]),
                     "carried_in": carried_in, "carried_out": carried_out, "_hashes": files})
    assert not carry_docs
    # no token lost: packed tokens = weighted document tokens - tokens of all-masked chunks dropped on purpose
    assert totals["real_tokens"] == weighted - totals["dropped_masked_tokens"], (totals, weighted)
    slots = totals["slots"]
    totals["padding_fraction"] = round(1 - totals["real_tokens"] / slots, 6) if slots else 0.0
    totals["packing_efficiency"] = round(totals["real_tokens"] / slots, 6) if slots else 0.0
    totals["weighted_tokens"] = weighted
    return rows, totals


def write_state(folder: Path, names: list[str], hashes: dict[str, str]) -> None:
    """The `state.json` that makes `datasets.load_from_disk` open the folder's Arrow files, memory-mapped, as one
    dataset (its fingerprint a hash of their content)."""
    fingerprint = hashlib.sha256("".join(hashes[n] for n in names).encode()).hexdigest()[:16]
    state = {"_data_files": [{"filename": n} for n in names], "_fingerprint": fingerprint,
             "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
             "_split": None}
    (folder / "state.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    if not (folder / "dataset_info.json").is_file():  # a bucket with no packs at all
        from research.contracts import PACK_SCHEMA, pack_table, save_bucket

        empty = folder / ".empty"
        save_bucket(pack_table(np.zeros((0, 1), np.int32), np.zeros((0, 1), np.int32), [], [], []).cast(PACK_SCHEMA),
                    empty)
        shutil.copyfile(empty / "dataset_info.json", folder / "dataset_info.json")
        shutil.rmtree(empty)


def write_rejects(r: PrepareRun, n_shards: int) -> None:
    """rejects.jsonl: the shards' rejects files one after another (corpus order)."""
    with open(r.out / "rejects.jsonl", "wb") as out:
        for s in range(n_shards):
            with open(r.work / "tokens" / f"s{s:05d}" / "rejects.jsonl", "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)


def _sum_stats(items: list[dict], keys: tuple[str, ...]) -> dict:
    return {k: sum(i[k] for i in items) for k in keys}


def step_stats(r: PrepareRun, n_shards: int, pack_stats: dict) -> tuple[dict, dict]:
    """The manifest's `steps` (counts summed over shards) and `records`."""
    d = r.cfg.data
    rec = [st.load_json(r.work / "records" / f"s{s:05d}.json") for s in range(n_shards)]
    tok = [st.load_json(r.work / "tokens" / f"s{s:05d}" / "stats.json") for s in range(n_shards)]
    dec = st.load_json(r.work / "decide" / "stats.json")
    read = _sum_stats([x["read"] for x in rec], ("lines", "blank_lines", "records", "rejected", "files",
                                                 "boms_stripped"))
    content: dict[int, int] = {}
    compressed: dict[str, int] = {}
    spans = st.load_json(r.work / "plan.json")["spans"]
    for s, x in enumerate(rec):
        fi = spans[s]["file_index"]
        content[fi] = content.get(fi, 0) + x["read"]["content_lines"]
        for kind, n in x["read"]["compressed_files"].items():
            compressed[kind] = compressed.get(kind, 0) + n
    read["empty_files"] = sum(1 for v in content.values() if v == 0)
    read["compressed_files"] = dict(sorted(compressed.items()))
    reasons: dict[str, int] = {}
    for x in rec:
        for k, n in x["clean"]["reasons"].items():
            reasons[k] = reasons.get(k, 0) + n
    clean = _sum_stats([x["clean"] for x in rec], ("in", "kept", "rejected")) | {"reasons": dict(sorted(reasons.items()))}
    dd = dec["dedup"]
    exact_removed, near_removed = dd.get("exact_removed", 0), dd.get("near_removed", 0)
    dedup = {"in": clean["kept"], "exact_removed": exact_removed, "exact_clusters": dd.get("exact_clusters", 0),
             "near_removed": near_removed, "near_clusters": dd.get("near_clusters", 0)}
    if d.dedup.near:
        dedup["bands_rows"] = dd["bands_rows"]
    dedup["kept"] = dedup["in"] - exact_removed - near_removed
    dedup["rejected"] = exact_removed + near_removed
    sc = dec["score"]
    score = {"in": dedup["kept"], "kept": dedup["kept"] - sc.get("rejected", 0), "rejected": sc.get("rejected", 0),
             "mode": d.score.mode, "mean_score": sc.get("mean_score")}
    backends: dict[str, int] = {}
    per_cat: dict[str, int] = {}
    for x in tok:
        t = x["tokenize"]
        if t["backend"]:
            backends[t["backend"]] = backends.get(t["backend"], 0) + 1
        per_cat[x["category"]] = per_cat.get(x["category"], 0) + t["tokens"]
    reasons_seen = sorted({x["tokenize"]["backend_reason"] for x in tok if x["tokenize"]["backend_reason"]})
    tokenize = {"backend": "+".join(sorted(backends)) or None, "backend_reason": "; ".join(reasons_seen) or None,
                "docs": sum(x["tokenize"]["docs"] for x in tok), "tokens": sum(x["tokenize"]["tokens"] for x in tok),
                "label_tokens": sum(x["tokenize"]["label_tokens"] for x in tok),
                "tokens_per_category": dict(sorted(per_cat.items()))}
    bins = {c: [0] * r.cfg.buckets.num_bins for c in sorted({inp.category for inp in d.inputs})}
    for x in tok:
        bins[x["category"]] = [a + b for a, b in zip(bins[x["category"]], x["tokens_per_bin"], strict=True)]
    steps = {"read": read, "clean": clean, "dedup": dedup, "score": score, "tokenize": tokenize,
             "bins": {"tokens_per_bin": bins, "weighted_tokens": pack_stats["weighted_tokens"],
                      "assignment": "per document: blake2b(buckets.seed, category, text) mod num_bins"},
             "pack": {k: v for k, v in pack_stats.items() if k != "weighted_tokens"}}
    records_in = read["records"] + read["rejected"]
    kept = score["kept"]
    rejected = read["rejected"] + clean["rejected"] + dedup["rejected"] + score["rejected"]
    assert records_in == kept + rejected, (records_in, kept, rejected)
    assert tokenize["docs"] == kept, (tokenize["docs"], kept)
    return steps, {"in": records_in, "kept": kept, "rejected": rejected}


def build_manifest(r: PrepareRun, raw: DictConfig, n_shards: int, rows: list[dict], pack_stats: dict) -> dict:
    """manifest.json's content (research/contracts.py)."""
    d, out = r.cfg.data, r.out
    steps, records = step_stats(r, n_shards, pack_stats)
    rec = [st.load_json(r.work / "records" / f"s{s:05d}.json") for s in range(n_shards)]
    input_hashes = {}
    spans = st.load_json(r.work / "plan.json")["spans"]
    for s, x in zip(spans, rec, strict=True):
        if "sha256" in x["read"]:
            input_hashes[str(r.files[s["file_index"]][2])] = x["read"]["sha256"]
    outputs = {}
    for row in rows:
        for name, h in sorted(row.pop("_hashes").items()):
            outputs[f"{row['path']}/{name}"] = h
    outputs["rejects.jsonl"] = sha256_file(out / "rejects.jsonl")
    return {
        "max_length": d.max_length,
        "pad_token_id": r.special.pad,
        "bos_token_id": r.special.bos,
        "eos_token_id": r.special.eos,
        "num_buckets": r.cfg.buckets.num_bins,
        "packing": ("per bucket: the bucket's documents in corpus order, best-fit decreasing over windows of "
                    f"{d.pack.window_packs} packs, the least-filled pack of each window moving on to the next"
                    + ("; the least-filled pack of bucket k moves on to bucket k+1" if d.pack.carry_over else "")),
        "buckets": rows,
        "categories": sorted({inp.category for inp in d.inputs}),
        "weights": dict(sorted(d.weights.items())),
        "records": records,
        "steps": steps,
        "warnings": r.warnings,
        "config": _what_it_makes(r, raw),
        "versions": versions(EXTRA_PACKAGES),
        "hashes": {
            "inputs": dict(sorted(input_hashes.items())),
            "tokenizer": {f.name: sha256_file(f) for f in sorted(Path(r.tokenizer_path).iterdir()) if f.is_file()},
            "outputs": dict(sorted(outputs.items())),
        },
    }


def summary(r: PrepareRun, manifest: dict, n_shards: int) -> dict:
    """The key figures for summary.json."""
    steps = manifest["steps"]
    tokens, pack = steps["tokenize"]["tokens"], steps["pack"]
    e = r.cfg.data.engine
    return {
        "records_in": manifest["records"]["in"], "records_kept": manifest["records"]["kept"],
        "records_rejected": manifest["records"]["rejected"],
        "tokens": tokens, "packs": pack["packs"], "packing_efficiency": pack["packing_efficiency"],
        "num_buckets": r.cfg.buckets.num_bins, "timings_s": {k: round(v, 3) for k, v in r.timings.items()},
        "tokens_per_s": round(tokens / max(sum(r.timings.values()), 1e-9), 1),
        "engine": {"executor": e.executor, "workers": r.cfg.data.num_workers, "shards": n_shards,
                   "shard_mb": e.shard_mb, "partitions": e.partitions},
        "warnings": r.warnings,
    }
