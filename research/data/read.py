"""Read the mix's inputs into records, one bad line never costing its neighbours.

Files are read in binary and split on b"\\n" here, and each line is decoded and parsed on its own: an invalid
UTF-8 byte, a broken JSON line or a wrong field type rejects that line only. Plain-text inputs hold one document
per block of non-blank lines (blank lines separate documents), so a multi-line document stays whole.
"""

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from research.config.data import InputConfig
from research.data.document import Record
from research.errors import GraftError
from research.rejects import Rejects

STEP = "read"


@dataclass
class ReadStats:
    lines: int = 0
    blank_lines: int = 0
    records: int = 0
    rejected: int = 0
    files: int = 0
    empty_files: int = 0


def resolve_inputs(inputs: Sequence[InputConfig]) -> list[tuple[int, InputConfig, Path]]:
    """Every (input index, input, file) to read, in config order then name order; fails before any work."""
    out = []
    if not inputs:
        raise GraftError("data.inputs is empty: list at least one input (path, format, category, weight)")
    for i, inp in enumerate(inputs):
        p = Path(inp.path)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
            if not files:
                raise GraftError(f"data.inputs[{i}].path={inp.path!r}: folder holds no files")
            out.extend((i, inp, f) for f in files)
        elif p.is_file():
            out.append((i, inp, p))
        else:
            raise GraftError(f"data.inputs[{i}].path={inp.path!r}: no such file or folder")
    return out


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            yield n, raw.rstrip(b"\r\n")


def _reject_raw(rejects: Rejects, name: str, n: int, reason: str, raw: bytes, detail=None) -> None:
    rejects.add(STEP, name, n, reason, raw[:400].decode("utf-8", errors="replace"), detail=detail)


def _read_jsonl(path: Path, name: str, inp: InputConfig, max_bytes: int, rejects: Rejects, stats: ReadStats):
    fields = ("source", "target") if inp.format == "jsonl_st" else ("text",)
    for n, raw in _lines(path):
        stats.lines += 1
        if not raw.strip():
            stats.blank_lines += 1
            continue
        if len(raw) > max_bytes:
            _reject_raw(rejects, name, n, "line_too_long", raw, detail=f"{len(raw)} bytes > {max_bytes}")
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            _reject_raw(rejects, name, n, "invalid_utf8", raw, detail=f"byte {e.start}")
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            rejects.add(STEP, name, n, "invalid_json", line, detail=str(e).splitlines()[0])
            continue
        if not isinstance(obj, dict):
            rejects.add(STEP, name, n, "not_an_object", line)
            continue
        values, bad = [], None
        for key in fields:
            v = obj.get(key, "" if key == "source" else None)
            if v is None:
                bad = f"missing_field:{key}"
                break
            if not isinstance(v, str):
                bad = f"wrong_type:{key}"
                break
            values.append(v)
        if bad:
            rejects.add(STEP, name, n, bad, line)
            continue
        source, target = (values[0], values[1]) if len(values) == 2 else ("", values[0])
        yield Record(name, n, inp.category, source, target)


def _read_text(path: Path, name: str, inp: InputConfig, max_bytes: int, rejects: Rejects, stats: ReadStats):
    block: list[tuple[int, bytes]] = []

    def flush():
        first = block[0][0]
        raw = b"\n".join(r for _, r in block)
        block.clear()
        if len(raw) > max_bytes:
            _reject_raw(rejects, name, first, "line_too_long", raw, detail=f"{len(raw)} bytes > {max_bytes}")
            return None
        try:
            return Record(name, first, inp.category, "", raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            _reject_raw(rejects, name, first, "invalid_utf8", raw, detail=f"byte {e.start}")
            return None

    for n, raw in _lines(path):
        stats.lines += 1
        if raw.strip():
            block.append((n, raw))
            continue
        stats.blank_lines += 1
        if block:
            rec = flush()
            if rec is not None:
                yield rec
    if block:
        rec = flush()
        if rec is not None:
            yield rec


def read_inputs(inputs: Sequence[InputConfig], max_line_bytes: int, rejects: Rejects) -> tuple[list[Record], dict]:
    """All records of all inputs in a fixed order (config order, then file name, then line)."""
    stats = ReadStats()
    records: list[Record] = []
    before = len(rejects.rows)
    for _i, inp, path in resolve_inputs(inputs):
        name = inp.path if Path(inp.path).is_file() else str(Path(inp.path) / path.name)
        stats.files += 1
        if path.stat().st_size == 0:
            stats.empty_files += 1
            continue
        reader = _read_text if inp.format == "text" else _read_jsonl
        records.extend(reader(path, name, inp, max_line_bytes, rejects, stats))
    stats.records = len(records)
    stats.rejected = len(rejects.rows) - before
    return records, stats.__dict__.copy()
