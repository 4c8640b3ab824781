"""Check a model folder's weight files before anything loads them: a truncated download, a half-written copy or a
file of garbage becomes one line naming the file and what is wrong, instead of a SafetensorError traceback minutes
into a run. Reads only the headers (the first 8 bytes and the JSON after them) and the files' sizes, never a tensor.

A safetensors file is: an 8-byte little-endian header length N, N bytes of JSON (tensor name -> dtype, shape,
data_offsets [begin, end) into the data that follows; an optional `__metadata__`), then the tensors' bytes,
contiguous and covering the rest of the file exactly. A sharded folder adds `model.safetensors.index.json`, whose
`weight_map` sends each tensor name to the shard holding it.
"""

import json
import math
import os
import struct
from pathlib import Path

from research.errors import GraftError

INDEX = "model.safetensors.index.json"
MAX_HEADER = 100_000_000
"""safetensors refuses headers larger than this (100 MB)."""
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64,
    "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
"""Bits per element; a dtype not listed here (a newer safetensors) still gets its offsets checked."""


def check_weights(folder: str | Path, key: str = "model.path") -> list[Path]:
    """Check every `*.safetensors` file of `folder` and, when sharded, its index; return the files checked.

    Raises GraftError (`<key>='<folder>': <file>: <problem>`) for an unreadable file, a header that is not a
    safetensors header, tensor data that is truncated or followed by stray bytes, an index that is not JSON or names
    a missing shard or a tensor its shard does not hold. A folder without safetensors files passes (returns []):
    callers that require them say so themselves.
    """
    root = Path(folder).expanduser()
    where = f"{key}={str(folder)!r}"
    index = root / INDEX
    files = {p.name: p for p in sorted(root.glob("*.safetensors"))}
    weight_map = read_index(index, where) if index.exists() else {}
    for shard in sorted(set(weight_map.values())):
        if shard not in files:
            if not (root / shard).exists():
                raise GraftError(f"{where}: {INDEX} names shard {shard!r}, which is missing")
            files[shard] = root / shard
    names = {name: tensor_names(path, where) for name, path in files.items()}
    for tensor, shard in weight_map.items():
        if tensor not in names[shard]:
            raise GraftError(f"{where}: {INDEX} maps tensor {tensor!r} to {shard}, which does not hold it")
    return list(files.values())


def read_index(index: Path, where: str) -> dict[str, str]:
    """The index's weight_map (tensor name -> shard file name)."""
    try:
        doc = json.loads(index.read_text(encoding="utf-8"))
    except OSError as e:
        raise GraftError(f"{where}: {index.name}: cannot read ({e.strerror or type(e).__name__})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GraftError(f"{where}: {index.name}: not JSON ({e})") from None
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(k, str) and isinstance(v, str) and v
                                                   for k, v in weight_map.items()):
        raise GraftError(f"{where}: {index.name}: no weight_map of tensor name -> shard file")
    for shard in set(weight_map.values()):
        if Path(shard).name != shard:
            raise GraftError(f"{where}: {index.name}: shard {shard!r} is not a file name in the folder")
    return weight_map


def tensor_names(path: Path, where: str) -> set[str]:
    """The tensors a safetensors file holds, after checking its header against its size."""
    name = path.name

    def bad(problem: str) -> GraftError:
        return GraftError(f"{where}: {name}: {problem}")

    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            head = f.read(8)
            if len(head) < 8:
                raise bad(f"truncated ({size} bytes; a safetensors file starts with an 8-byte header length)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or n < 2:
                raise bad(f"not a safetensors file (its first 8 bytes give a header length of {n})")
            if 8 + n > size:
                raise bad(f"truncated inside its header (header of {n} bytes, file of {size})")
            raw = f.read(n)
    except OSError as e:
        raise bad(f"cannot read ({e.strerror or type(e).__name__})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict):
        raise bad("not a safetensors file (its header is not a JSON object)")
    tensors = sorted(((t, info) for t, info in header.items() if t != "__metadata__"),
                     key=lambda item: tensor_span(item[1]) or (-1, -1))
    end = 0
    for tensor, info in tensors:
        span = tensor_span(info)
        if span is None:
            raise bad(f"not a safetensors file (bad header entry for {tensor!r})")
        begin, stop = span
        if begin != end:
            raise bad(f"corrupt header (tensor {tensor!r} starts at byte {begin} of the data, expected {end})")
        bits = DTYPE_BITS.get(info["dtype"])
        if bits is not None and math.prod(info["shape"]) * bits != (stop - begin) * 8:
            raise bad(f"corrupt header (tensor {tensor!r}, {info['dtype']} {info['shape']}, "
                      f"is given {stop - begin} bytes)")
        end = stop
    data = size - 8 - n
    if end > data:
        raise bad(f"truncated (its header lists {end} bytes of tensor data, the file holds {data}; "
                  f"{size} bytes, expected {8 + n + end})")
    if end < data:
        raise bad(f"corrupt ({data - end} stray bytes after the last tensor's data)")
    return {t for t, _ in tensors}


def tensor_span(info) -> tuple[int, int] | None:
    """(begin, end) of a well-formed header entry, else None."""
    if not isinstance(info, dict) or not isinstance(info.get("dtype"), str):
        return None
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        return None
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets):
        return None
    begin, end = offsets
    return (begin, end) if 0 <= begin <= end else None


HF_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
            "special_tokens_map.json", "added_tokens.json", INDEX)
"""Names an HF model or tokenizer folder may hold; where present, each must be a readable regular file."""


def check_readable(folder: str | Path, key: str, names: tuple[str, ...] | None = None) -> None:
    """Every file directly in `folder` (or only those of `names` that exist) opens for reading (one byte is read),
    and the HF file names present are regular files: an unreadable input is one line naming the file, before any
    work starts."""
    root = Path(folder).expanduser()
    where = f"{key}={str(folder)!r}"
    try:
        entries = sorted(root.iterdir()) if names is None else [root / n for n in names if os.path.lexists(root / n)]
    except OSError as e:
        raise GraftError(f"{where}: cannot list the folder ({e.strerror or type(e).__name__})") from None
    for entry in entries:
        if (entry.name in HF_FILES or names is not None) and not entry.is_file():
            raise GraftError(f"{where}: {entry.name}: not a regular file")
        if entry.is_file():
            try:
                with open(entry, "rb") as f:
                    f.read(1)
            except OSError as e:
                raise GraftError(f"{where}: {entry.name}: cannot read ({e.strerror or type(e).__name__})") from None
