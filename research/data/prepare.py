"""The whole data pipeline into one folder: read -> clean -> dedup -> score -> tokenize -> bins -> pack -> buckets.

Everything written except summary.json (which holds timings) depends only on the config and the input bytes,
so two runs give byte-identical outputs.

`prepare` runs four steps, sharing a `PrepareRun`: check the inputs (before any work), the record steps with
their timings, packing and writing the buckets, then rejects.jsonl and manifest.json. Warnings (an empty input
file; a category left with no records, when `data.allow_empty=true`) go to the log and the manifest's `warnings`;
a category left with no records is otherwise an error, raised before anything is written. `run` is the
prepare_data stage (`python -m research.prepare_data`): `prepare` into out_dir, then config.yaml and summary.json.
"""

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from research.atomic import atomic_dir
from research.config.root import GraftConfig
from research.contracts import BUCKETS_DIR, bucket_name, sha256_file, write_manifest
from research.data import bins as bk
from research.data.clean import clean, expected_langs
from research.data.dedup import dedup
from research.data.pack import Chunk, Packs, chunk_docs, pack_bucket
from research.data.read import display_name, read_inputs, resolve_inputs
from research.data.score import build_scorer, score_filter
from research.data.tokenize import Doc, SpecialIds, load_tokenizer, special_ids, tokenize
from research.errors import GraftError
from research.rejects import Rejects
from research.runinfo import versions, write_run_files

log = logging.getLogger("graft.data")
stage_log = logging.getLogger("graft")
EXTRA_PACKAGES = ("datasketch", "tokenizers", "tqdm", "scipy", "zstandard")
CHUNK_COUNTS = ("chunks", "split_docs", "dropped_masked_chunks", "dropped_masked_tokens")
"""The counts of `chunk_docs` summed over buckets into the manifest's steps.pack."""


@dataclass
class PrepareRun:
    """What the steps of one `prepare` call share: the checked inputs, rejects, timings and per-step stats."""
    cfg: GraftConfig
    out: Path
    tokenizer_path: str
    progress: bool
    files: list
    """(input index, input, file) of every file to read."""
    tok: object
    special: SpecialIds
    rejects: Rejects = field(default_factory=Rejects)
    timings: dict[str, float] = field(default_factory=dict)
    steps: dict[str, dict] = field(default_factory=dict)
    """step -> its stats, in pipeline order (the manifest's `steps`)."""
    records_in: int = 0
    records_kept: int = 0
    warnings: list[str] = field(default_factory=list)
    """Problems that did not stop the run, in the order met (the manifest's `warnings`)."""

    def warn(self, message: str) -> None:
        log.warning("%s", message)
        self.warnings.append(message)

    @contextmanager
    def timed(self, step: str):
        t = time.perf_counter()
        yield
        self.timings[step] = time.perf_counter() - t


def run(cfg: GraftConfig, raw: DictConfig) -> dict:
    """The prepare_data stage: the prepared dataset in `out_dir`, atomically; return the summary."""
    with atomic_dir(cfg.out_dir, cfg.overwrite) as tmp:
        summary = prepare(cfg, raw, Path(tmp), cfg.paths.tokenizer)
        write_run_files(tmp, raw, summary)
    stage_log.info("prepare_data: %s packs, %s tokens, efficiency %.4f -> %s", summary["packs"], summary["tokens"],
                   summary["packing_efficiency"], cfg.out_dir)
    return summary


def prepare(cfg: GraftConfig, raw: DictConfig, out: Path, tokenizer_path: str, progress: bool = True) -> dict:
    """Write buckets/, rejects.jsonl and manifest.json under `out`; return the summary's key figures."""
    run = check_inputs(cfg, out, tokenizer_path, progress)
    docs = run_record_steps(run)
    bucket_rows = pack_and_write(run, docs)
    run.rejects.write(out / "rejects.jsonl")
    write_manifest(out, build_manifest(run, raw, bucket_rows))
    return summary(run)


def check_inputs(cfg: GraftConfig, out: Path, tokenizer_path: str, progress: bool) -> PrepareRun:
    """Everything that can fail on the user's side, checked before any work starts."""
    files = resolve_inputs(cfg.data.inputs)
    if not cfg.data.allow_empty:
        for cat, paths in _files_per_category(files).items():
            if all(p.stat().st_size == 0 for p in paths):
                raise GraftError(f"data: every input file of category {cat!r} is empty "
                                 f"({', '.join(map(str, paths))}); fix its inputs or set data.allow_empty=true")
    tok = load_tokenizer(tokenizer_path)
    special = special_ids(tok, cfg.data.tokenize, tokenizer_path)
    build_scorer(cfg.data.score)
    import datasets  # noqa: F401 - imported before the timed steps, as any library's import is

    return PrepareRun(cfg, out, tokenizer_path, progress, files, tok, special)


def run_record_steps(run: PrepareRun) -> list[Doc]:
    """read -> clean -> dedup -> score -> tokenize, each timed; the documents to pack."""
    d, rejects, progress = run.cfg.data, run.rejects, run.progress
    with run.timed("read"):
        records, run.steps["read"] = read_inputs(d.inputs, d.clean.max_line_bytes, rejects, warn=run.warn)
    run.records_in = run.steps["read"]["records"] + run.steps["read"]["rejected"]
    with run.timed("clean"):
        records, run.steps["clean"] = clean(records, expected_langs(d.inputs), d.clean, rejects, progress)
    with run.timed("dedup"):
        records, run.steps["dedup"] = dedup(records, d.dedup, rejects, progress)
    with run.timed("score"):
        records, run.steps["score"] = score_filter(records, d.score, rejects)
    run.records_kept = len(records)
    # records in = kept + rejected, over the whole pipeline
    assert run.records_in == len(records) + len(rejects.rows), (run.records_in, len(records), len(rejects.rows))
    check_categories(run, records)
    with run.timed("tokenize"):
        docs, run.steps["tokenize"] = tokenize(records, run.tokenizer_path, run.special, d.tokenize, d.num_workers,
                                               progress, tok=run.tok)
    return docs


def _files_per_category(files: list) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for _, inp, path in files:
        out.setdefault(inp.category, []).append(path)
    return out


def check_categories(run: PrepareRun, records: list) -> None:
    """A category with no record left after score is an error naming it and its main reject reasons (a warning
    with data.allow_empty=true); no record left at all is always an error."""
    kept: dict[str, int] = {}
    for r in records:
        kept[r.category] = kept.get(r.category, 0) + 1
    names: dict[str, set[str]] = {}
    for _, inp, path in run.files:
        names.setdefault(inp.category, set()).add(display_name(inp, path))
    for cat in sorted(names):
        if kept.get(cat):
            continue
        reasons: dict[str, int] = {}
        for row in run.rejects.rows:
            if row["file"] in names[cat]:
                key = f"{row['step']}:{row['reason']}"
                reasons[key] = reasons.get(key, 0) + 1
        top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        why = (f"{sum(reasons.values())} rejected, most as {', '.join(f'{k} ({n})' for k, n in top)}" if top
               else "its input files hold no records")
        message = f"data: category {cat!r} has no records left after read, clean, dedup and score ({why})"
        if not run.cfg.data.allow_empty:
            raise GraftError(f"{message}; fix its inputs or set data.allow_empty=true")
        run.warn(message)
    if not records:
        raise GraftError("data: no records left in any category after read, clean, dedup and score: nothing to "
                         "pack")


def _input_hashes(files: list) -> dict[str, str]:
    out = {}
    for _, _, p in files:
        try:
            out[str(p)] = sha256_file(p)
        except OSError as e:
            raise GraftError(f"{p}: cannot read to hash it ({e.strerror or type(e).__name__}); did it change "
                             "during the run?") from None
    return out


def pack_and_write(run: PrepareRun, docs: list[Doc]) -> list[dict]:
    """Bins, buckets, packs: write buckets/bucket_kkk/ and return the manifest's bucket rows."""
    d, b = run.cfg.data, run.cfg.buckets
    with run.timed("pack_and_write"):
        bins = bk.assign_bins(docs, b.num_bins, b.seed)
        members = bk.bucket_docs(bins, d.weights, b.num_bins, b.seed)
        totals = {key: 0 for key in CHUNK_COUNTS} | {"packs": 0, "real_tokens": 0, "slots": 0,
                                                     "carried_chunks": 0, "carried_tokens": 0}
        (run.out / BUCKETS_DIR).mkdir()
        rows, carry = [], []
        for k, idx in enumerate(members):
            row, carry = write_bucket(run, docs, k, idx, carry, last=k + 1 == len(members), totals=totals)
            rows.append(row)
        assert not carry
        tokens_weighted = sum(len(docs[i].ids) for idx in members for i in idx)
        # no token lost: packed tokens = weighted document tokens - tokens of all-masked chunks dropped on purpose
        assert totals["real_tokens"] == tokens_weighted - totals["dropped_masked_tokens"]
        slots = totals["slots"]
        totals["padding_fraction"] = round(1 - totals["real_tokens"] / slots, 6) if slots else 0.0
        totals["packing_efficiency"] = round(totals["real_tokens"] / slots, 6) if slots else 0.0
    categories = sorted({inp.category for inp in d.inputs})
    bin_stats = {cat: [sum(len(docs[i].ids) for i in bn) for bn in bins.get(cat, [])] for cat in categories}
    run.steps["bins"] = {"tokens_per_bin": bin_stats, "weighted_tokens": tokens_weighted}
    run.steps["pack"] = totals
    return rows


def write_bucket(run: PrepareRun, docs: list[Doc], k: int, idx: list[int], carried_in: list[Chunk], last: bool,
                 totals: dict) -> tuple[dict, list[Chunk]]:
    """Pack and save bucket k (its documents `idx` after the chunks carried in); add its counts to `totals`.
    Return its manifest row and the chunks it carries on to bucket k+1."""
    d = run.cfg.data
    chunks, cstats = chunk_docs(docs, d.max_length, idx)
    rng = np.random.default_rng([run.cfg.buckets.seed, k]) if d.pack.shuffle else None
    packs, carry = pack_bucket(docs, carried_in, chunks, d.max_length, run.special.pad, rng,
                               carry_out=d.pack.carry_over and not last)
    name = bucket_name(k)
    bk.save_bucket(packs, run.out / BUCKETS_DIR / name)
    real, slots = int(packs.num_tokens.sum()), packs.input_ids.size
    for key in CHUNK_COUNTS:
        totals[key] += cstats[key]
    totals["packs"] += len(packs.num_tokens)
    totals["real_tokens"] += real
    totals["slots"] += slots
    totals["carried_chunks"] += len(carry)
    totals["carried_tokens"] += sum(len(c) for c in carry)
    row = {"name": name, "path": f"{BUCKETS_DIR}/{name}", "num_packs": len(packs.num_tokens),
           "num_docs": len(idx), "tokens": real, "tokens_per_category": tokens_per_category(packs),
           "padding_fraction": round(1 - real / slots, 6) if slots else 0.0,
           "carried_in": {"chunks": len(carried_in), "tokens": sum(len(c) for c in carried_in)},
           "carried_out": {"chunks": len(carry), "tokens": sum(len(c) for c in carry)}}
    return row, carry


def tokens_per_category(packs: Packs) -> dict[str, int]:
    """category -> real tokens in the packs, in name order."""
    per_cat: dict[str, int] = {}
    for lens, cats in zip(packs.doc_lens, packs.doc_categories, strict=False):
        for n, c in zip(lens, cats, strict=False):
            per_cat[c] = per_cat.get(c, 0) + n
    return dict(sorted(per_cat.items()))


def build_manifest(run: PrepareRun, raw: DictConfig, bucket_rows: list[dict]) -> dict:
    """manifest.json's content (research/contracts.py); hashes every file already written under run.out."""
    d, out = run.cfg.data, run.out
    return {
        "max_length": d.max_length,
        "pad_token_id": run.special.pad,
        "bos_token_id": run.special.bos,
        "eos_token_id": run.special.eos,
        "num_buckets": run.cfg.buckets.num_bins,
        "packing": ("per bucket: bucket k packs bin k of every category together (best-fit decreasing)"
                    + ("; the least-filled pack's chunks move on to bucket k+1" if d.pack.carry_over else "")),
        "buckets": bucket_rows,
        "categories": sorted({inp.category for inp in d.inputs}),
        "weights": dict(sorted(d.weights.items())),
        "records": {"in": run.records_in, "kept": run.records_kept, "rejected": len(run.rejects.rows)},
        "steps": run.steps,
        "warnings": run.warnings,
        "config": OmegaConf.to_container(raw, resolve=True),
        "versions": versions(EXTRA_PACKAGES),
        "hashes": {
            "inputs": _input_hashes(run.files),
            "tokenizer": {f.name: sha256_file(f) for f in sorted(Path(run.tokenizer_path).iterdir())
                          if f.is_file()},
            "outputs": {str(f.relative_to(out)): sha256_file(f) for f in sorted(out.rglob("*")) if f.is_file()},
        },
    }


def summary(run: PrepareRun) -> dict:
    """The key figures for summary.json."""
    tokens, pack = run.steps["tokenize"]["tokens"], run.steps["pack"]
    return {
        "records_in": run.records_in, "records_kept": run.records_kept, "records_rejected": len(run.rejects.rows),
        "tokens": tokens, "packs": pack["packs"], "packing_efficiency": pack["packing_efficiency"],
        "num_buckets": run.cfg.buckets.num_bins, "timings_s": {k: round(v, 3) for k, v in run.timings.items()},
        "tokens_per_s": round(tokens / max(sum(run.timings.values()), 1e-9), 1),
        "warnings": run.warnings,
    }
