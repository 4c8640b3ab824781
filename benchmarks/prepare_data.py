"""Graft's `prepare_data` against the real Colossal-LLaMA reference script, on the same corpus and tokenizer.

    python benchmarks/prepare_data.py --reference-repo PATH/TO/ColossalAI [--reference-python PATH/TO/python]
        [--inputs a.jsonl b.jsonl ...] [--tokenizer TOKENIZER_DIR] [--scales 1,2,4] [--workers 1,2]
        [--reference-scales 1,2,4] [--modes same,full] [--max-length 4096] [--num-bins 10]

What runs, each as a subprocess timed from start to exit (imports included) while its process tree is polled
every 0.1 s with psutil for the RSS of the largest single process and of all of them together:

- reference: the UNMODIFIED `applications/Colossal-LLaMA/dataset/prepare_pretrain_dataset.py` of a ColossalAI
  checkout (`--reference-repo`, the checkout's root or its `applications/Colossal-LLaMA`), run with
  `--reference-python` (default: this interpreter) from the application folder with it on PYTHONPATH (the script
  imports `colossal_llama`, `colossalai.logging`, `datasets`, `transformers`, `torch`). Its worker count is
  `multiprocessing.cpu_count()`, hard-coded in the script. It leaves `datasets` unpinned, and the version
  matters: from datasets 4.8.5, `save_to_disk(num_proc=...)` starts spawned workers that re-import torch,
  transformers and colossalai for every bin (126-244 s of a run on 2 cores, against 3-5 s with datasets 4.0.0).
  The fair baseline is therefore an environment with datasets 4.0.0 (and transformers 4.51.3, the release
  colossalai 0.5.0 is built against); the benchmark records the reference interpreter's versions in its output.
  See docs/benchmarks_prepare_data.md for building that environment.
- graft same: `python -m research.prepare_data` doing the reference's work only: tokenize, pack, bin, write.
  Dedup is off (`data.dedup.exact=false data.dedup.near=false`), scoring keeps everything
  (`data.score.mode=none`; the scores are still computed), and every cleaning threshold lets everything through
  (normalization none, min_chars 0, ratios 1.0, menu detection off, control characters allowed). Cleaning cannot
  be switched off entirely: it still counts character classes of every record and rejects, unconditionally,
  empty targets (dropped from the common corpus beforehand, see below), U+FFFD, lone surrogates and mojibake
  (UTF-8 read as cp1252); the rejected records are reported.
- graft full: the whole pipeline with the default config (clean, exact + near dedup, heuristic score threshold).

Both Graft modes run with `data.num_workers` = each value of `--workers`, every input at weight 1.0 and the same
`max_length` and bin count as the reference.

The corpus: `--inputs` (jsonl in the reference's {"source", "target", "category"} format) or, by default, the demo
corpus (research/data/demo_corpus.py, built from installed packages, with its injected noise). Both systems read
the same files: the lines are first rewritten one file per category (`<category>.jsonl`, one folder, which is
what the reference's `--data_input_dirs` takes), keeping only lines the reference can read (valid UTF-8, a JSON
object, string `target`; `source` missing becomes ""; `category` missing becomes the file's stem) and a non-blank
target (Graft rejects an empty target in any mode). Dropped lines are counted and printed.

Scaling (`--scales`): corpus k x holds k times the corpus's text as real text that dedup does not remove. Copy j
of a category of n documents pairs each document i with document (i + j) mod n of the same category: source i,
target i + "\\n" + target (i+j) mod n, documents indexed by target length (so the two halves of a pair are alike
in length, and two pairs that share a document are about a third alike, far below the near-dedup threshold). A
copy holds twice the text, so corpus k x is copies 1 .. k // 2, plus the original documents when k is odd: 1x the
originals, 2x copy 1, 4x copies 1 and 2. Copies are distinct from each other and from the originals (for
n > k // 2). Documents of a copy are twice as long on average, which the reference's truncation feels.

Reported per run: tokens in the output and tokens/s (output tokens / wall time), wall time, peak RSS (largest
process, and all processes together: RSS counts pages shared by forked workers once per process), tokens lost,
packing efficiency (real tokens / (packs x max_length); the reference's rows are padded to max_length by its
collator), and categories per bucket. Tokens lost: for Graft, the tokenize step's tokens (manifest.json) minus
the real tokens in the packs; for the reference, its input tokenized here once, exactly as its
`supervised_tokenize_pretrain` does (one string BOS + source + target + EOS), minus the tokens in its output Arrow,
split into truncation (a document longer than max_length is cut) and the rest: the partial packs its packer drops
at the end of every buffer (checked bin by bin against a simulation of its packer on the lengths counted here). The reference's bins are percent slices of its
inputs concatenated in `os.listdir` order; categories per bin are counted from those slices (and the per-bin
token counts are checked against its output).

Prints markdown tables and appends one row per run to benchmarks/results/prepare_data_reference.csv (the older
benchmarks/results/prepare_data.csv has other columns and is left as it is).
"""

import argparse
import csv
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REFERENCE_SCRIPT = "dataset/prepare_pretrain_dataset.py"
REFERENCE_APP = "applications/Colossal-LLaMA"
IGNORE_INDEX = -100
CSV_COLUMNS = ["time", "device", "scale", "system", "mode", "workers", "max_length", "num_bins", "records_in",
               "records_kept", "input_tokens", "output_tokens", "lost_tokens", "lost_fraction", "seconds",
               "tokens_per_s", "packs", "packing_efficiency", "peak_rss_mb_largest", "peak_rss_mb_total",
               "max_processes", "categories_per_bucket_min", "categories_per_bucket_max", "num_categories",
               "bucket_tokens_min", "bucket_tokens_max", "load_before", "corpus", "versions"]
LEGACY_CSV = ROOT / "benchmarks/results/prepare_data.csv"
DEFAULT_CSV = ROOT / "benchmarks/results/prepare_data_reference.csv"
DEMO_LANGS = {"zh_news": "zh", "zh_reviews": "zh", "en_wiki": "en"}
"""conf/data/demo.yaml's languages, used by the full runs on the demo corpus (any other category: any)."""


# ------------------------------------------------------------------------------------------------- the corpus

def read_reference_format(paths) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """Records of jsonl files in the reference's format, grouped by category (in first-seen order), and the
    counts of lines dropped per reason. Only lines the reference can read and Graft does not reject in any mode
    are kept: valid UTF-8, a JSON object, a string target that is not blank; source missing -> "", category
    missing -> the file's stem."""
    by_cat: dict[str, list[dict]] = {}
    dropped: dict[str, int] = {}

    def drop(reason):
        dropped[reason] = dropped.get(reason, 0) + 1

    for path in paths:
        path = Path(path)
        with open(path, "rb") as f:
            for raw in f:
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    drop("invalid_utf8")
                    continue
                except ValueError:
                    drop("invalid_json")
                    continue
                if not isinstance(obj, dict):
                    drop("not_an_object")
                    continue
                source, target = obj.get("source", ""), obj.get("target")
                category = obj.get("category", path.stem.split(".")[0])
                if not isinstance(target, str) or not isinstance(source, str) or not isinstance(category, str):
                    drop("wrong_field_type")
                    continue
                if not target.strip():
                    drop("empty_target")
                    continue
                if any(0xD800 <= ord(ch) <= 0xDFFF for ch in source + target):  # only via a JSON \ud800 escape
                    drop("lone_surrogate")
                    continue
                by_cat.setdefault(category, []).append({"source": source, "target": target, "category": category})
    return by_cat, dropped


def scale_docs(docs: list[dict], scale: int) -> list[dict]:
    """`scale` x the text of one category's documents, as real text that dedup does not remove: copy j pairs each
    document i with document (i + j) mod n of the category (source i; target i + "\\n" + target (i+j) mod n),
    documents being indexed by target length (ties: input order), so the two halves of a pair are alike in length
    and no pair is a near duplicate of another pair holding the same document. A copy holds twice the text, so
    scale k is copies 1 .. k // 2, plus the originals when k is odd (scale 1: the originals, 2: copy 1, 3: the
    originals and copy 1, 4: copies 1 and 2), in input order of i."""
    if scale < 1:
        raise ValueError(f"scale={scale!r}: must be >= 1")
    n = len(docs)
    order = sorted(range(n), key=lambda i: (len(docs[i]["target"]), i))
    rank = {i: r for r, i in enumerate(order)}
    out = list(docs) if scale % 2 else []
    for j in range(1, scale // 2 + 1):
        for i, d in enumerate(docs):
            other = docs[order[(rank[i] + j) % n]]
            out.append({"source": d["source"], "target": d["target"] + "\n" + other["target"],
                        "category": d["category"]})
    return out


def scale_corpus(by_cat: dict[str, list[dict]], scale: int) -> dict[str, list[dict]]:
    """scale_docs for every category."""
    return {cat: scale_docs(docs, scale) for cat, docs in by_cat.items()}


def file_stem(category: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", category) or "_"


def write_corpus(by_cat: dict[str, list[dict]], out_dir: Path) -> list[tuple[Path, str]]:
    """One `<category>.jsonl` per category under out_dir (what the reference's --data_input_dirs reads);
    return (path, category) in category order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files, stems = [], set()
    for cat, docs in by_cat.items():
        stem = file_stem(cat)
        while stem in stems:
            stem += "_"
        stems.add(stem)
        path = out_dir / f"{stem}.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
        files.append((path, cat))
    return files


def build_tokenizer(out: Path) -> Path:
    """The LLaMA-format 32,000-piece SentencePiece tokenizer of mistral-common, as an HF fast tokenizer folder."""
    from transformers import LlamaTokenizerFast

    model = Path(list(importlib.util.find_spec("mistral_common").submodule_search_locations)[0]) / "data/tokenizer.model.v1"
    LlamaTokenizerFast(vocab_file=str(model), from_slow=True, legacy=False, add_prefix_space=True,
                       pad_token="<unk>").save_pretrained(str(out))
    return out


# ------------------------------------------------------------------------------------------- running and polling

def run_monitored(cmd: list[str], cwd, env: dict, log_path: Path, timeout: float, interval: float = 0.1) -> dict:
    """Run cmd to its end, polling its process tree every `interval` s: wall time, return code, peak RSS of the
    largest single process and of the whole tree (bytes), most processes seen at once."""
    import psutil

    peak = {"largest": 0, "total": 0, "procs": 0}
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        done = threading.Event()

        def poll():
            try:
                root = psutil.Process(proc.pid)
            except psutil.Error:
                return
            while not done.is_set():
                try:
                    tree = [root] + root.children(recursive=True)
                except psutil.Error:
                    break
                rss = []
                for p in tree:
                    try:
                        rss.append(p.memory_info().rss)
                    except psutil.Error:
                        pass
                if rss:
                    peak["largest"] = max(peak["largest"], max(rss))
                    peak["total"] = max(peak["total"], sum(rss))
                    peak["procs"] = max(peak["procs"], len(rss))
                done.wait(interval)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            rc = f"timeout after {timeout:.0f} s (killed, {rc})"
        wall = time.perf_counter() - t0
        done.set()
        poller.join()
    return {"rc": rc, "seconds": wall, "peak_rss_largest": peak["largest"], "peak_rss_total": peak["total"],
            "max_processes": peak["procs"]}


def log_tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.update({"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"})
    env.update(extra)
    return env


# ------------------------------------------------------------------------------------------------ reading arrow

def _arrow_tables(dataset_dir: Path, columns: list[str]):
    """The tables of a `save_to_disk` folder (Arrow IPC stream files data-*.arrow), in file order."""
    import pyarrow as pa

    state = dataset_dir / "state.json"
    if state.is_file():
        names = [f["filename"] for f in json.loads(state.read_text())["_data_files"]]
    else:
        names = sorted(p.name for p in dataset_dir.glob("*.arrow"))
    for name in names:
        with pa.memory_map(str(dataset_dir / name)) as source:
            table = pa.ipc.open_stream(source).read_all()
        yield table.select([c for c in columns if c in table.column_names])


def read_reference_output(out_dir, max_length: int) -> dict:
    """The reference's output folder (`--data_output_dirs`): per part (bin) under arrow/, rows and tokens
    (input_ids lengths), label tokens (labels != -100); totals and packing efficiency (tokens / rows x
    max_length)."""
    import numpy as np
    import pyarrow.compute as pc

    parts = []
    for part in sorted(p for p in (Path(out_dir) / "arrow").iterdir() if p.is_dir()):
        rows = tokens = labelled = 0
        longest = 0
        for t in _arrow_tables(part, ["input_ids", "labels"]):
            if t.num_rows == 0:
                continue
            ids = t.column("input_ids").combine_chunks()
            lens = pc.list_value_length(ids).to_numpy(zero_copy_only=False)
            rows += t.num_rows
            tokens += int(lens.sum())
            longest = max(longest, int(lens.max()))
            if "labels" in t.column_names:
                flat = pc.list_flatten(t.column("labels").combine_chunks()).to_numpy(zero_copy_only=False)
                labelled += int(np.count_nonzero(flat != IGNORE_INDEX))
        parts.append({"name": part.name, "rows": rows, "tokens": tokens, "label_tokens": labelled,
                      "longest": longest})
    rows = sum(p["rows"] for p in parts)
    tokens = sum(p["tokens"] for p in parts)
    return {"parts": parts, "rows": rows, "tokens": tokens, "label_tokens": sum(p["label_tokens"] for p in parts),
            "packing_efficiency": tokens / (rows * max_length) if rows else 0.0,
            "longest": max((p["longest"] for p in parts), default=0)}


def read_graft_output(data_dir) -> dict:
    """Graft's output folder (research/contracts.py): manifest figures, and per bucket packs, real tokens and
    tokens per category, read from the bucket Arrow files (`num_tokens`, `doc_lens`, `doc_categories`)."""
    data_dir = Path(data_dir)
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    max_length = int(manifest["max_length"])
    buckets = []
    paths = [data_dir / b["path"] for b in manifest.get("buckets", [])] or sorted(
        p for p in (data_dir / "buckets").iterdir() if p.is_dir())
    for path in paths:
        packs = tokens = 0
        per_cat: dict[str, int] = {}
        for t in _arrow_tables(path, ["num_tokens", "doc_lens", "doc_categories"]):
            packs += t.num_rows
            tokens += sum(t.column("num_tokens").to_pylist())
            for lens, cats in zip(t.column("doc_lens").to_pylist(), t.column("doc_categories").to_pylist(),
                                  strict=True):
                for n, c in zip(lens, cats, strict=True):
                    per_cat[c] = per_cat.get(c, 0) + n
        buckets.append({"name": path.name, "packs": packs, "tokens": tokens, "tokens_per_category": per_cat})
    steps = manifest.get("steps", {})
    tok = steps.get("tokenize", {})
    summary_path = data_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    records = manifest.get("records", {})
    packs = sum(b["packs"] for b in buckets)
    tokens = sum(b["tokens"] for b in buckets)
    return {"max_length": max_length, "buckets": buckets, "packs": packs, "tokens": tokens,
            "input_tokens": tok.get("tokens", summary.get("tokens")),
            "records_in": records.get("in", summary.get("records_in")),
            "records_kept": records.get("kept", summary.get("records_kept")),
            "categories": list(manifest.get("categories", [])),
            "packing_efficiency": tokens / (packs * max_length) if packs else 0.0,
            "clean_reasons": steps.get("clean", {}).get("reasons", {}),
            "dedup": {k: v for k, v in steps.get("dedup", {}).items() if k.endswith("_removed")},
            "score_rejected": steps.get("score", {}).get("rejected"),
            "backend": tok.get("backend"), "timings_s": summary.get("timings_s", {})}


# --------------------------------------------------------------------------------------- the reference's inputs

def reference_input_order(input_dir) -> list[Path]:
    """The reference's input files: `*.jsonl` of the folder in os.listdir order, as its script lists them."""
    input_dir = os.path.abspath(input_dir)
    return [Path(input_dir) / name for name in os.listdir(input_dir) if name.endswith(".jsonl")]


def reference_splits(num_rows: int, num_bins: int) -> list[tuple[int, int]]:
    """The row ranges of the reference's bins: its `train[a%:b%]` splits, resolved as datasets does (percent
    boundaries rounded to the closest row)."""
    interval = math.ceil(100 / num_bins)
    out = []
    for start in range(0, 100, interval):
        end = min(start + interval, 100)
        out.append((int(round(start * num_rows / 100.0)), int(round(end * num_rows / 100.0))))
    return out


def reference_bins(input_dir, num_bins: int) -> dict:
    """Rows, categories per bin of the reference's split of its input folder."""
    cats = []
    for path in reference_input_order(input_dir):
        with open(path, encoding="utf-8") as f:
            cats.extend(json.loads(line)["category"] for line in f if line.strip())
    splits = reference_splits(len(cats), num_bins)
    return {"rows": len(cats), "splits": splits,
            "categories": [sorted(set(cats[a:b])) for a, b in splits]}


def reference_input_tokens(input_dir, tokenizer_dir, max_length: int, num_bins: int, batch: int = 512) -> dict:
    """Tokenize the reference's input once, as its supervised_tokenize_pretrain does (one string BOS + source +
    target + EOS, cut to max_length), and resolve its bins: per bin the tokens before and after truncation, the
    categories, and the lengths in the order its packer meets them (sorted by category, then length); totals."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tok.add_bos_token = False
    tok.add_eos_token = False
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token
    docs = []
    for path in reference_input_order(input_dir):
        with open(path, encoding="utf-8") as f:
            docs.extend(json.loads(line) for line in f if line.strip())
    lengths = []
    for b in range(0, len(docs), batch):
        chunk = docs[b:b + batch]
        texts = [tok.bos_token + d["source"] + d["target"] + tok.eos_token for d in chunk]
        lengths.extend(len(x) for x in tok(texts)["input_ids"])
    all_masked = 0  # cut to max_length inside the source: kept, with every label -100
    for d, n in zip(docs, lengths, strict=True):
        if n > max_length and d["source"] and len(tok([tok.bos_token + d["source"]])["input_ids"][0]) >= max_length:
            all_masked += 1
    bins = []
    for a, b in reference_splits(len(docs), num_bins):
        order = sorted(range(a, b), key=lambda i: (docs[i]["category"], lengths[i]))
        cut = [min(lengths[i], max_length) for i in order]
        bins.append({"rows": b - a, "tokens": sum(lengths[a:b]), "after_truncation": sum(cut),
                     "categories": sorted({d["category"] for d in docs[a:b]}), "lengths": cut})
    total = sum(lengths)
    truncated = sum(n - min(n, max_length) for n in lengths)
    return {"docs": len(docs), "tokens": total, "truncated_tokens": truncated,
            "truncated_docs": sum(1 for n in lengths if n > max_length), "all_masked_docs": all_masked,
            "to_packer": total - truncated, "bins": bins}


def simulate_reference_packer(lengths: list[int], max_length: int, num_packed_sequences: int = 8) -> list[int]:
    """The pack lengths ClosedToConstantLengthSplicedDataset (infinite=False) makes from documents of these
    lengths (each <= max_length, as its tokenizer function leaves them): buffers of at least max_length x
    num_packed_sequences tokens, greedy in order, the partial pack left at the end of every buffer but the last
    dropped."""
    out, i, n, more = [], 0, len(lengths), True
    buffer_max = max_length * num_packed_sequences
    while more:
        buffer, size = [], 0
        while size < buffer_max:
            if i == n:
                more = False
                break
            buffer.append(lengths[i])
            size += lengths[i]
            i += 1
        cur = 0
        for length in buffer:
            if cur + length > max_length:
                out.append(cur)
                cur = length
            else:
                cur += length
        if not more and cur > 0:
            out.append(cur)
    return out


def check_simulation(counted: dict, out: dict, max_length: int) -> str:
    """Compare the reference's output, bin by bin, with simulate_reference_packer on the lengths counted here:
    "exact" when packs and tokens match in every bin, else what differs."""
    bad = []
    if len(counted["bins"]) != len(out["parts"]):
        return f"{len(out['parts'])} parts written, {len(counted['bins'])} bins expected"
    for b, p in zip(counted["bins"], out["parts"], strict=True):
        sim = simulate_reference_packer(b["lengths"], max_length)
        if (len(sim), sum(sim)) != (p["rows"], p["tokens"]):
            bad.append(f"{p['name']}: {p['rows']} packs / {p['tokens']} tokens, simulated {len(sim)} / {sum(sim)}")
    if bad:
        print("warning: the reference's output differs from the simulation of its packer:\n  " + "\n  ".join(bad))
    return "exact" if not bad else f"differs in {len(bad)} bins"


def reference_app_dir(repo) -> Path:
    repo = Path(repo).resolve()
    for cand in (repo / REFERENCE_APP, repo):
        if (cand / REFERENCE_SCRIPT).is_file():
            return cand
    raise SystemExit(f"--reference-repo {repo}: neither it nor {REFERENCE_APP} under it holds {REFERENCE_SCRIPT}")


def interpreter_versions(python: str, packages=("datasets", "transformers", "tokenizers", "torch", "colossalai",
                                                "pyarrow", "numpy")) -> dict:
    code = ("import importlib.metadata as m, json, platform\n"
            f"out = {{'python': platform.python_version()}}\n"
            f"for p in {list(packages)!r}:\n"
            "    try: out[p] = m.version(p)\n"
            "    except m.PackageNotFoundError: out[p] = None\n"
            "print(json.dumps(out))")
    r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    if r.returncode:
        raise SystemExit(f"--reference-python {python}: cannot run it ({r.stderr.strip()[-300:]})")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------- the runs

def run_reference(app_dir: Path, python: str, corpus_dir: Path, tokenizer: Path, out_dir: Path, max_length: int,
                  num_bins: int, timeout: float) -> dict:
    cmd = [python, str(app_dir / REFERENCE_SCRIPT), "--data_input_dirs", str(corpus_dir), "--tokenizer_dir",
           str(tokenizer), "--data_output_dirs", str(out_dir), "--max_length", str(max_length),
           "--num_spliced_dataset_bins", str(num_bins)]
    env = _env(PYTHONPATH=os.pathsep.join([str(app_dir), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               HF_HOME=str(out_dir.parent / "hf_home"))
    return run_monitored(cmd, app_dir, env, out_dir.parent / f"{out_dir.name}.log", timeout)


SAME_WORK = ["data.dedup.exact=false", "data.dedup.near=false", "data.score.mode=none",
             "data.clean.normalization=none", "data.clean.min_chars=0", "data.clean.max_chars=1000000000",
             "data.clean.min_script_fraction=0.0", "data.clean.max_symbol_ratio=1.0",
             "data.clean.max_digit_ratio=1.0", "data.clean.max_dup_line_fraction=1.0",
             "data.clean.max_dup_ngram_fraction=1.0", "data.clean.menu_min_separators=0",
             "data.clean.max_control_chars=1000000000"]
"""Overrides that leave Graft the reference's work: no dedup, no score filter, cleaning thresholds that let
everything through (what cleaning still rejects unconditionally: empty target, U+FFFD, lone surrogates,
mojibake)."""


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def graft_overrides(files: list[tuple[Path, str]], langs: dict, tokenizer: Path, run_root: Path, workers: int,
                    max_length: int, num_bins: int, mode: str) -> list[str]:
    """The overrides of one Graft run: every file at weight 1.0; lang from `langs` in mode full, any in mode same."""
    entries = ",".join(
        f"{{path:{_quote(str(p))},format:jsonl_st,category:{_quote(c)},weight:1.0,"
        f"lang:{langs.get(c, 'any') if mode == 'full' else 'any'}}}" for p, c in files)
    out = [f"paths.tokenizer={_quote(str(tokenizer))}", f"run_root={_quote(str(run_root))}",
           f"data.inputs=[{entries}]", f"data.num_workers={workers}", f"data.max_length={max_length}",
           f"buckets.num_bins={num_bins}"]
    return out + (SAME_WORK if mode == "same" else [])


def run_graft(python: str, files, langs, tokenizer: Path, run_root: Path, workers: int, max_length: int,
              num_bins: int, mode: str, timeout: float) -> dict:
    cmd = [python, "-m", "research.prepare_data",
           *graft_overrides(files, langs, tokenizer, run_root, workers, max_length, num_bins, mode)]
    run_root.mkdir(parents=True, exist_ok=True)
    return run_monitored(cmd, ROOT, _env(HYDRA_FULL_ERROR="1"), run_root.parent / f"{run_root.name}.log", timeout)


def _bucket_stats(per_bucket_cats: list, per_bucket_tokens: list) -> dict:
    counts = [len(c) for c in per_bucket_cats] or [0]
    tokens = per_bucket_tokens or [0]
    return {"cats_min": min(counts), "cats_max": max(counts), "bucket_tokens_min": min(tokens),
            "bucket_tokens_max": max(tokens)}


def graft_row(run: dict, out: dict, scale: int, mode: str, workers: int, num_cats: int) -> dict:
    inp = out["input_tokens"] or 0
    cats = [[c for c, n in b["tokens_per_category"].items() if n > 0] for b in out["buckets"]]
    return {"scale": scale, "system": "graft", "mode": mode, "workers": workers, "records_in": out["records_in"],
            "records_kept": out["records_kept"], "input_tokens": inp, "output_tokens": out["tokens"],
            "lost_tokens": inp - out["tokens"], "packs": out["packs"], "packing_efficiency": out["packing_efficiency"],
            "num_categories": num_cats, **run,
            **_bucket_stats(cats, [b["tokens"] for b in out["buckets"]])}


def reference_row(run: dict, out: dict, counted: dict, scale: int, workers: int, num_cats: int) -> dict:
    bins = counted["bins"]
    return {"scale": scale, "system": "reference", "mode": "same", "workers": workers,
            "records_in": counted["docs"], "records_kept": counted["docs"],
            "input_tokens": counted["tokens"], "output_tokens": out["tokens"],
            "lost_tokens": counted["tokens"] - out["tokens"], "packs": out["rows"],
            "packing_efficiency": out["packing_efficiency"], "num_categories": num_cats, **run,
            **_bucket_stats([b["categories"] for b in bins], [p["tokens"] for p in out["parts"]]),
            "truncated_tokens": counted["truncated_tokens"], "truncated_docs": counted["truncated_docs"],
            "all_masked_docs": counted["all_masked_docs"],
            "dropped_tail_tokens": counted["to_packer"] - out["tokens"]}


# ----------------------------------------------------------------------------------------------------- reporting

def _mb(b) -> str:
    return f"{b / 2**20:,.0f}"


def format_runs(rows: list[dict]) -> str:
    """The per-run markdown table; speed-up is against the reference run at the same scale."""
    ref = {r["scale"]: r for r in rows if r["system"] == "reference"}
    head = ("| scale | system | mode | workers | records in / kept | output tokens | wall s | tokens/s | vs ref "
            "| tokens lost | packs | packing eff. | peak RSS MB largest / total (procs) | categories per bucket "
            "| bucket tokens min / max |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for r in rows:
        tps = r["output_tokens"] / r["seconds"]
        base = ref.get(r["scale"])
        vs = f"{tps / (base['output_tokens'] / base['seconds']):.2f}x" if base and r is not base else ""
        lost = r["lost_tokens"]
        frac = lost / r["input_tokens"] if r["input_tokens"] else 0.0
        cats = (f"{r['cats_min']}" if r["cats_min"] == r["cats_max"] else f"{r['cats_min']}-{r['cats_max']}")
        lines.append(
            f"| {r['scale']}x | {r['system']} | {r['mode']} | {r['workers']} | {r['records_in']:,} / "
            f"{r['records_kept']:,} | {r['output_tokens']:,} | {r['seconds']:.1f} | {tps:,.0f} | {vs} | "
            f"{lost:,} ({100 * frac:.2f} %) | {r['packs']:,} | {100 * r['packing_efficiency']:.2f} % | "
            f"{_mb(r['peak_rss_largest'])} / {_mb(r['peak_rss_total'])} ({r['max_processes']}) | "
            f"{cats} of {r['num_categories']} | {r['bucket_tokens_min']:,} / {r['bucket_tokens_max']:,} |")
    return "\n".join(lines)


def format_scaling(rows: list[dict]) -> str:
    """tokens/s and peak RSS (largest process) per configuration (rows) and scale (columns)."""
    scales = sorted({r["scale"] for r in rows})
    keys = []
    for r in rows:
        k = (r["system"], r["mode"], r["workers"])
        if k not in keys:
            keys.append(k)
    head = "| run | " + " | ".join(f"{s}x tokens/s | {s}x peak MB" for s in scales) + " |"
    lines = [head, "|" + "|".join(["---"] + ["---:"] * (2 * len(scales))) + "|"]
    for k in keys:
        cells = []
        for s in scales:
            r = next((r for r in rows if (r["system"], r["mode"], r["workers"]) == k and r["scale"] == s), None)
            cells += ([f"{r['output_tokens'] / r['seconds']:,.0f}", _mb(r["peak_rss_largest"])] if r else ["", ""])
        name = f"{k[0]} {k[1]}" + (f", {k[2]} worker{'s' if k[2] > 1 else ''}" if k[0] == "graft" else
                                    f" ({k[2]} processes)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_reference_losses(rows: list[dict]) -> str:
    head = ("| scale | input tokens | cut by truncation (docs) | dropped partial packs | total lost | packing eff. "
            "| all-masked packs kept | simulated packer |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r["system"] != "reference":
            continue
        lines.append(f"| {r['scale']}x | {r['input_tokens']:,} | {r['truncated_tokens']:,} ({r['truncated_docs']}) | "
                     f"{r['dropped_tail_tokens']:,} | {r['lost_tokens']:,} "
                     f"({100 * r['lost_tokens'] / max(r['input_tokens'], 1):.2f} %) | "
                     f"{100 * r['packing_efficiency']:.2f} % | {r['all_masked_docs']} | {r['simulated']} |")
    return "\n".join(lines)


def csv_path(requested: str | None) -> Path:
    """Where rows go: --out, or prepare_data_reference.csv (the legacy prepare_data.csv has other columns)."""
    if requested:
        path = Path(requested)
        if path.exists():
            with open(path, newline="") as f:
                header = next(csv.reader(f), None)
            if header and header != CSV_COLUMNS:
                print(f"{path} has other columns; writing to {DEFAULT_CSV} instead")
                return DEFAULT_CSV
        return path
    return DEFAULT_CSV


def append_csv(path: Path, rows: list[dict], device: str, corpus: str, versions: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(CSV_COLUMNS)
        for r in rows:
            v = versions["reference" if r["system"] == "reference" else "graft"]
            w.writerow([stamp, device, r["scale"], r["system"], r["mode"], r["workers"], r["max_length"],
                        r["num_bins"], r["records_in"], r["records_kept"], r["input_tokens"], r["output_tokens"],
                        r["lost_tokens"], round(r["lost_tokens"] / max(r["input_tokens"], 1), 6),
                        round(r["seconds"], 3), round(r["output_tokens"] / r["seconds"]), r["packs"],
                        round(r["packing_efficiency"], 6), round(r["peak_rss_largest"] / 2**20, 1),
                        round(r["peak_rss_total"] / 2**20, 1), r["max_processes"], r["cats_min"], r["cats_max"],
                        r["num_categories"], r["bucket_tokens_min"], r["bucket_tokens_max"], r["load_before"],
                        corpus, json.dumps(v, sort_keys=True)])


# ---------------------------------------------------------------------------------------------------------- main

def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", nargs="+", help="jsonl files in the reference's {source, target, category} format "
                    "(default: the demo corpus, built from installed packages)")
    ap.add_argument("--tokenizer", help="an HF tokenizer folder (default: mistral-common's LLaMA-format 32,000-piece "
                    "SentencePiece model)")
    ap.add_argument("--reference-repo", help="a ColossalAI checkout (or its applications/Colossal-LLaMA); without "
                    "it only Graft runs")
    ap.add_argument("--reference-python", default=sys.executable, help="interpreter for the reference script")
    ap.add_argument("--graft-python", default=sys.executable, help="interpreter for research.prepare_data")
    ap.add_argument("--scales", default="1,2,4", help="corpus sizes, comma-separated multiples (default 1,2,4)")
    ap.add_argument("--reference-scales", help="scales the reference runs at (default: all of --scales)")
    ap.add_argument("--workers", default="1,2", help="Graft's data.num_workers values (default 1,2)")
    ap.add_argument("--modes", default="same,full", help="Graft modes: same (the reference's work), full")
    ap.add_argument("--max-length", type=int, default=4096)
    ap.add_argument("--num-bins", type=int, default=10, help="reference bins = Graft buckets (default 10)")
    ap.add_argument("--lang", action="append", default=[], metavar="CATEGORY=zh|en|any",
                    help="expected language of a category in the full runs (demo corpus: as conf/data/demo.yaml; "
                         "otherwise any)")
    ap.add_argument("--seed", type=int, default=1234, help="demo corpus seed")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    ap.add_argument("--work-dir", help="where corpora and outputs go (default: a temporary folder, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--out", help=f"CSV to append to (default {DEFAULT_CSV.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    args.scales, args.workers = _ints(args.scales), _ints(args.workers)
    args.reference_scales = _ints(args.reference_scales) if args.reference_scales else args.scales
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(args.modes) - {"same", "full"}:
        ap.error(f"--modes {','.join(args.modes)}: each must be same or full")
    args.app_dir = reference_app_dir(args.reference_repo) if args.reference_repo else None
    return args


def collect_versions(args) -> dict:
    """Package versions of Graft's and the reference's interpreters (the reference script's commit, if a git
    checkout); warns when the tokenizer libraries differ from this interpreter's (its input is counted here)."""
    versions = {"graft": interpreter_versions(args.graft_python, ("datasets", "transformers", "tokenizers",
                                                                  "sentencepiece", "pyarrow", "numpy", "datatrove"))}
    if not args.app_dir:
        return versions
    ref = versions["reference"] = interpreter_versions(args.reference_python)
    try:
        commit = subprocess.run(["git", "-C", str(args.app_dir), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except OSError:
        commit = ""
    ref["script"] = f"{REFERENCE_APP}/{REFERENCE_SCRIPT}" + (f" @ {commit}" if commit else "")
    print(f"reference interpreter: {args.reference_python}: {json.dumps(ref)}")
    for p in ("transformers", "tokenizers"):
        here = importlib.metadata.version(p)
        if ref.get(p) != here:
            print(f"warning: {p} {here} here, {ref.get(p)} for the reference: the tokens counted here for its "
                  "input may differ from its own")
    return versions


def load_corpus(args, work: Path) -> tuple[dict, str, dict]:
    """(records by category, the corpus's name, category -> expected language for the full runs)."""
    if args.inputs:
        raw_files = [Path(p) for p in args.inputs]
        name, langs = "inputs: " + ", ".join(p.name for p in raw_files), {}
    else:
        from research.data.demo_corpus import build_demo_corpus

        info = build_demo_corpus(work / "demo", args.seed)
        raw_files = [Path(p) for p in info["files"].values()]
        name, langs = f"demo (seed {args.seed})", dict(DEMO_LANGS)
    for item in args.lang:
        cat, _, lang = item.partition("=")
        langs[cat] = lang
    by_cat, dropped = read_reference_format(raw_files)
    if not by_cat:
        raise SystemExit("no usable record in the inputs")
    print(f"corpus: {name}; {sum(map(len, by_cat.values())):,} records in {len(by_cat)} categories "
          f"({', '.join(f'{c}: {len(d):,}' for c, d in by_cat.items())}); lines dropped before both runs: "
          f"{dropped or 'none'}")
    return by_cat, name, langs


def reference_at(args, scale: int, corpus_dir: Path, tokenizer: Path, work: Path, num_cats: int) -> dict | None:
    """One reference run at this scale, read and counted; None if it failed."""
    out_dir = work / f"reference_x{scale}"
    shutil.rmtree(out_dir, ignore_errors=True)
    load = os.getloadavg()[0]
    run = run_reference(args.app_dir, args.reference_python, corpus_dir, tokenizer, out_dir, args.max_length,
                        args.num_bins, args.timeout)
    row = None
    if run["rc"] != 0:
        print(f"reference at {scale}x failed ({run['rc']}):\n{log_tail(work / (out_dir.name + '.log'))}")
    else:
        out = read_reference_output(out_dir, args.max_length)
        counted = reference_input_tokens(corpus_dir, tokenizer, args.max_length, args.num_bins)
        row = reference_row(run, out, counted, scale, os.cpu_count(), num_cats)
        row |= {"max_length": args.max_length, "num_bins": args.num_bins, "load_before": round(load, 2),
                "simulated": check_simulation(counted, out, args.max_length)}
        print(format_runs([row]).splitlines()[-1])
    shutil.rmtree(out_dir, ignore_errors=True)
    return row


def graft_at(args, scale: int, mode: str, workers: int, files, langs, tokenizer: Path, work: Path,
             num_cats: int) -> dict | None:
    """One Graft run at this scale, mode and worker count, read; None if it failed."""
    run_root = work / f"graft_{mode}_w{workers}_x{scale}"
    shutil.rmtree(run_root, ignore_errors=True)
    load = os.getloadavg()[0]
    run = run_graft(args.graft_python, files, langs, tokenizer, run_root, workers, args.max_length, args.num_bins,
                    mode, args.timeout)
    row = None
    if run["rc"] != 0:
        print(f"graft {mode} w{workers} at {scale}x failed ({run['rc']}):\n"
              f"{log_tail(work / (run_root.name + '.log'))}")
    else:
        out = read_graft_output(run_root / "data")
        row = graft_row(run, out, scale, mode, workers, num_cats)
        row |= {"max_length": args.max_length, "num_bins": args.num_bins, "load_before": round(load, 2),
                "graft_rejects": {"clean": out["clean_reasons"], "dedup": out["dedup"],
                                  "score": out["score_rejected"]}}
        print(format_runs([row]).splitlines()[-1] + f"  rejects: {row['graft_rejects']}")
    shutil.rmtree(run_root, ignore_errors=True)
    return row


def run_all(args, work: Path, by_cat: dict, langs: dict, tokenizer: Path) -> list[dict]:
    """Every run, scale by scale: the reference first (where asked), then Graft's modes and worker counts."""
    rows = []
    for scale in args.scales:
        corpus_dir = work / f"corpus_x{scale}"
        files = write_corpus(scale_corpus(by_cat, scale), corpus_dir)
        if args.app_dir and scale in args.reference_scales:
            rows.append(reference_at(args, scale, corpus_dir, tokenizer, work, len(by_cat)))
        for mode in args.modes:
            for w in args.workers:
                rows.append(graft_at(args, scale, mode, w, files, langs, tokenizer, work, len(by_cat)))
        shutil.rmtree(corpus_dir, ignore_errors=True)
    return [r for r in rows if r is not None]


def report(rows: list[dict], args, corpus_name: str, versions: dict, device: str) -> None:
    tok = args.tokenizer or "mistral-common tokenizer.model.v1 (32,000 pieces)"
    print(f"\n{corpus_name}; tokenizer {tok}; max_length {args.max_length}; {args.num_bins} bins; {device}")
    for k, v in versions.items():
        print(f"{k}: {json.dumps(v)}")
    print("\n" + format_runs(rows))
    print("\n" + format_scaling(rows))
    if any(r["system"] == "reference" for r in rows):
        print("\nreference's lost tokens\n\n" + format_reference_losses(rows))
    print()
    for r in rows:
        if r["system"] == "graft":
            print(f"graft {r['mode']} w{r['workers']} {r['scale']}x rejects: {r['graft_rejects']}")


def main(argv=None):
    args = parse_args(argv)
    versions = collect_versions(args)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="graft-prepare-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]
    try:
        tokenizer = Path(args.tokenizer).resolve() if args.tokenizer else build_tokenizer(work / "tokenizer")
        by_cat, corpus_name, langs = load_corpus(args, work)
        rows = run_all(args, work, by_cat, langs, tokenizer)
    finally:
        if not args.keep and not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    if not rows:
        raise SystemExit("no run succeeded")
    device = (f"cpu x{os.cpu_count()} ({platform.machine()}), load {load0:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after")
    report(rows, args, corpus_name, versions, device)
    path = csv_path(args.out)
    append_csv(path, rows, device, corpus_name, versions)
    print(f"\nrows appended to {path}")
    return rows


if __name__ == "__main__":
    main()
