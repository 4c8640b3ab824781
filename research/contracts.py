"""What stages hand each other, defined once: the packed-bucket format, its manifest, and shared constants.

`prepare_data` writes, and `train` reads, a folder of this shape (the synthetic data of tests and benchmark mode
is written through the same functions):

    manifest.json                 max_length, pad/bos/eos ids, categories, buckets: [{name, path, num_packs,
                                  tokens, tokens_per_category, ...}], per-step counts, hashes, versions, config
    buckets/bucket_{k:03d}/       a `datasets.load_from_disk` Arrow dataset per bucket (several Arrow files, one
                                  per packing window, listed in its state.json), one row per pack:
        input_ids       list<int32>  exactly max_length ids, padded with pad_token_id (never EOS)
        labels          list<int32>  same length, IGNORE_INDEX on source tokens, BOS and padding
        doc_lens        list<int32>  lengths of the documents (or document chunks) in the pack, in order; their
                                     sum is num_tokens, padding follows them
        doc_categories  list<string> the category of each document, aligned with doc_lens
        num_tokens      int32        real (non-padding) tokens in the pack

Training derives position ids (reset at each document start) and the per-document causal mask from doc_lens.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from research.errors import GraftError

IGNORE_INDEX = -100
"""Label of a token that is not trained on (source text, BOS, padding): torch's cross-entropy default."""

TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
"""The files of an HF tokenizer folder that travel with a model folder (init_model, train's final/)."""

MANIFEST = "manifest.json"
BUCKETS_DIR = "buckets"

PACK_SCHEMA = pa.schema([
    ("input_ids", pa.list_(pa.int32())),
    ("labels", pa.list_(pa.int32())),
    ("doc_lens", pa.list_(pa.int32())),
    ("doc_categories", pa.list_(pa.string())),
    ("num_tokens", pa.int32()),
])
PACK_COLUMNS = tuple(PACK_SCHEMA.names)


def bucket_name(k: int) -> str:
    return f"bucket_{k:03d}"


def sha256_file(path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pack_table(input_ids: np.ndarray, labels: np.ndarray, doc_lens: list, doc_categories: list,
               num_tokens) -> pa.Table:
    """Packs as an Arrow table of PACK_SCHEMA: `input_ids` and `labels` are (packs, max_length) arrays."""
    input_ids, labels = np.asarray(input_ids), np.asarray(labels)
    if input_ids.shape != labels.shape or input_ids.ndim != 2:
        raise ValueError(f"input_ids {input_ids.shape} and labels {labels.shape} must be equal (packs, length)")
    n, length = input_ids.shape
    offsets = pa.array(np.arange(0, n * length + 1, length, dtype=np.int32))
    return pa.Table.from_arrays([
        pa.ListArray.from_arrays(offsets, pa.array(input_ids.ravel(), pa.int32())),
        pa.ListArray.from_arrays(offsets, pa.array(labels.ravel(), pa.int32())),
        pa.array(doc_lens, pa.list_(pa.int32())),
        pa.array(doc_categories, pa.list_(pa.string())),
        pa.array(np.asarray(num_tokens), pa.int32()),
    ], schema=PACK_SCHEMA)


def save_bucket(table: pa.Table, path) -> None:
    """Write one bucket as a `datasets.load_from_disk` folder whose bytes depend only on the table's content
    (the fingerprint is a hash of the data, not random)."""
    import datasets
    from datasets import Dataset

    datasets.disable_progress_bars()
    if table.schema != PACK_SCHEMA:
        raise ValueError(f"bucket table schema {table.schema} is not PACK_SCHEMA")
    h = hashlib.sha256()
    for column in table.columns:
        for chunk in column.chunks:
            for buf in chunk.buffers():
                if buf is not None:
                    h.update(buf)
    Dataset(table, fingerprint=h.hexdigest()[:16]).save_to_disk(str(path))


def write_manifest(out_dir, manifest: dict) -> Path:
    """Write `manifest.json` (it needs at least max_length, pad_token_id, categories and buckets)."""
    missing = {"max_length", "pad_token_id", "categories", "buckets"} - set(manifest)
    if missing:
        raise ValueError(f"manifest lacks {sorted(missing)}")
    path = Path(out_dir) / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


@dataclass
class Manifest:
    root: Path
    max_length: int
    pad_token_id: int
    bucket_paths: list[Path]
    categories: list[str]
    raw: dict
    """The whole manifest.json as written."""


def read_manifest(data_dir) -> Manifest:
    """The manifest and bucket folders under `data_dir`, checked to exist (GraftError otherwise)."""
    root = Path(data_dir)
    path = root / MANIFEST
    if not root.is_dir():
        raise GraftError(f"paths.data={str(root)!r}: dataset folder not found (run python -m research.prepare_data)")
    if not path.is_file():
        raise GraftError(f"{path}: {MANIFEST} not found (not a prepare_data output folder)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        buckets = [root / b["path"] for b in raw["buckets"]]
        m = Manifest(root, int(raw["max_length"]), int(raw["pad_token_id"]), buckets, list(raw["categories"]), raw)
    except (KeyError, TypeError, ValueError) as e:
        raise GraftError(f"{path}: malformed manifest ({type(e).__name__}: {e})") from None
    if not buckets:
        raise GraftError(f"{path}: lists no buckets")
    for b in buckets:
        if not (b / "dataset_info.json").is_file():
            raise GraftError(f"{b}: bucket listed in {path.name} is missing or not a datasets folder")
    return m


def load_buckets(m: Manifest) -> list:
    """The bucket datasets (memory-mapped Arrow), each checked to have every PACK_COLUMNS column."""
    from datasets import load_from_disk

    out = []
    for b in m.bucket_paths:
        ds = load_from_disk(str(b))
        missing = set(PACK_COLUMNS) - set(ds.column_names)
        if missing:
            raise GraftError(f"{b}: bucket lacks columns {sorted(missing)}")
        out.append(ds)
    return out
