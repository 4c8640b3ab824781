"""Read the mix's inputs into records, one bad line never costing its neighbours.

Files are read in binary and split on b"\\n" here, and each line is decoded and parsed on its own: an invalid
UTF-8 byte, a broken JSON line or a wrong field type rejects that line only. Plain-text inputs hold one document
per block of non-blank lines (blank lines separate documents), so a multi-line document stays whole.

Compressed inputs are recognised by their first bytes, whatever their name: gzip, bz2 and xz are read with the
standard library, zstd with the `zstandard` package; a zip archive or UTF-16 text stops the run before any work.
A UTF-8 byte order mark at the start of a file is dropped (and counted). Every file is opened once before any work
(`resolve_inputs`), so a missing, unreadable or unsupported file is a one-line error naming it.
"""

import bz2
import gzip
import io
import json
import lzma
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from research.config.data import InputConfig
from research.data.document import Record
from research.errors import GraftError
from research.rejects import Rejects

STEP = "read"
BOM = b"\xef\xbb\xbf"
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ\x00", "xz"),
          (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
_BZ2_BLOCKS = (b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90")  # first block, or end of an empty stream
READ_COMPRESSIONS = ("gzip", "zstd", "bz2", "xz")
"""Compressions read transparently; any other format recognised by its first bytes stops the run."""


@dataclass
class ReadStats:
    lines: int = 0
    blank_lines: int = 0
    records: int = 0
    rejected: int = 0
    files: int = 0
    empty_files: int = 0
    """Files with no non-blank line (after decompression and BOM)."""
    boms_stripped: int = 0
    """Files that started with a UTF-8 byte order mark, dropped before the first line was parsed."""
    compressed_files: dict[str, int] = field(default_factory=dict)
    """compression -> files read through it."""


@dataclass(frozen=True)
class Span:
    """The lines of one input file that one shard reads: those that start at a byte offset in [start, end)."""
    file_index: int
    """Index of the file in `resolve_inputs` order."""
    start: int = 0
    end: int | None = None
    """None: to the end of the file."""
    first_line: int = 1
    """Line number of the first line that starts at or after `start`."""


def sniff(path: Path) -> str | None:
    """The compression (or non-UTF-8 text encoding) that the file's first bytes announce; None for plain bytes."""
    with open(path, "rb") as f:
        head = f.read(10)
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if len(head) == 10 and head[:3] == b"BZh" and head[3:4] in b"123456789" and head[4:] in _BZ2_BLOCKS:
        return "bz2"
    return None


def _zstandard():
    try:
        import zstandard
    except ImportError:
        return None
    return zstandard


def _check_file(key: str, f: Path) -> None:
    """Open `f` and read its first bytes; a GraftError naming it if it cannot be read or is of a format not read."""
    try:
        kind = sniff(f)
    except OSError as e:
        raise GraftError(f"{key}: cannot read {str(f)!r} ({e.strerror or type(e).__name__})") from None
    if kind == "zip":
        raise GraftError(f"{key}: {str(f)!r} is a zip archive; unzip it (gzip, zstd, bz2 and xz files are read as "
                         "they are, zip archives are not)")
    if kind == "utf-16":
        raise GraftError(f"{key}: {str(f)!r} is UTF-16 text (byte order mark); convert it to UTF-8")
    if kind == "zstd" and _zstandard() is None:
        raise GraftError(f"{key}: {str(f)!r} is zstd-compressed and the zstandard package is not installed "
                         "(pip install zstandard, or decompress it)")


def resolve_inputs(inputs: Sequence[InputConfig]) -> list[tuple[int, InputConfig, Path]]:
    """Every (input index, input, file) to read, in config order then name order; fails before any work.

    Each file is opened and its first bytes read here: a missing, unreadable or unsupported file, or a folder
    inside an input folder (folders are not read recursively), is a GraftError naming it."""
    out = []
    if not inputs:
        raise GraftError("data.inputs is empty: list at least one input (path, format, category, weight)")
    for i, inp in enumerate(inputs):
        key = f"data.inputs[{i}].path={inp.path!r}"
        p = Path(inp.path)
        if p.is_dir():
            try:
                entries = sorted(f for f in p.iterdir() if not f.name.startswith("."))
            except OSError as e:
                raise GraftError(f"{key}: cannot list the folder ({e.strerror or type(e).__name__})") from None
            for f in entries:
                if f.is_dir():
                    raise GraftError(f"{key}: holds a folder, {str(f)!r}; folders are not read recursively "
                                     "(list it as an input of its own, or move it out)")
                if not f.is_file():
                    raise GraftError(f"{key}: {str(f)!r} is not a regular file")
            if not entries:
                raise GraftError(f"{key}: folder holds no files")
            out.extend((i, inp, f) for f in entries)
        elif p.is_file():
            out.append((i, inp, p))
        elif p.exists():
            raise GraftError(f"{key}: not a regular file or folder")
        else:
            raise GraftError(f"{key}: no such file or folder")
    for i, inp, f in out:
        _check_file(f"data.inputs[{i}].path={inp.path!r}", f)
    return out


@contextmanager
def _open(path: Path, name: str) -> Iterator[tuple[io.BufferedIOBase, str | None]]:
    """The file's decompressed bytes and its compression (None for a plain file)."""
    try:
        kind = sniff(path)
        if kind == "gzip":
            f = gzip.open(path, "rb")
        elif kind == "bz2":
            f = bz2.open(path, "rb")
        elif kind == "xz":
            f = lzma.open(path, "rb")
        elif kind == "zstd":
            zstd = _zstandard()
            if zstd is None:
                raise GraftError(f"{name}: zstd-compressed and the zstandard package is not installed")
            raw = open(path, "rb")
            f = io.BufferedReader(zstd.ZstdDecompressor().stream_reader(raw, read_across_frames=True,
                                                                        closefd=True))
        elif kind is None:
            f = open(path, "rb")
        else:
            _check_file(name, path)  # raises, naming the format
            raise AssertionError(kind)
    except OSError as e:
        raise GraftError(f"{name}: cannot read ({e.strerror or type(e).__name__}); did it change after the "
                         "inputs were checked?") from None
    with f:
        yield f, kind


def _decompression_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError, EOFError, lzma.LZMAError)
    zstd = _zstandard()
    return errors + (zstd.ZstdError,) if zstd is not None else errors


def _lines(path: Path, name: str, stats: ReadStats, span: "Span | None" = None) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its end) of the whole file, or of the lines that start inside `span`."""
    with _open(path, name) as (f, kind):
        if kind:
            stats.compressed_files[kind] = stats.compressed_files.get(kind, 0) + 1
        first, pos, end = 1, 0, None
        if span is not None and (span.start or span.end is not None):
            if kind:
                raise AssertionError(f"{name}: a compressed file is read whole, not by byte range")
            first, end = span.first_line, span.end
            if span.start:  # the line that holds byte start - 1 belongs to the span before
                f.seek(span.start - 1)
                f.readline()
            pos = f.tell()
        try:
            for n, raw in enumerate(f, first):
                if end is not None:
                    if pos >= end:
                        break
                    pos += len(raw)
                if n == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM):]
                    stats.boms_stripped += 1
                yield n, raw.rstrip(b"\r\n")
        except _decompression_errors() as e:
            what = f"corrupt or truncated {kind} data" if kind else "read failed"
            raise GraftError(f"{name}: {what} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                             ) from None


def display_name(inp: InputConfig, path: Path) -> str:
    """How records and rejects name a file: the input's path, or the input folder joined with the file's name."""
    return inp.path if Path(path) == Path(inp.path) else str(Path(inp.path) / path.name)


def _reject_raw(rejects: Rejects, name: str, n: int, reason: str, raw: bytes, detail=None) -> None:
    rejects.add(STEP, name, n, reason, raw[:400].decode("utf-8", errors="replace"), detail=detail)


def _read_jsonl(path: Path, name: str, inp: InputConfig, max_bytes: int, rejects: Rejects, stats: ReadStats,
                span: "Span | None" = None):
    fields = ("source", "target") if inp.format == "jsonl_st" else ("text",)
    for n, raw in _lines(path, name, stats, span):
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


def _read_text(path: Path, name: str, inp: InputConfig, max_bytes: int, rejects: Rejects, stats: ReadStats,
               span: "Span | None" = None):
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

    for n, raw in _lines(path, name, stats, span):
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


def read_inputs(inputs: Sequence[InputConfig], max_line_bytes: int, rejects: Rejects,
                warn: Callable[[str], None] | None = None) -> tuple[list[Record], dict]:
    """All records of all inputs in a fixed order (config order, then file name, then line).

    `warn(message)` is called for each empty file (no non-blank line)."""
    stats = ReadStats()
    records: list[Record] = []
    before = len(rejects.rows)
    for _i, inp, path in resolve_inputs(inputs):
        name = display_name(inp, path)
        stats.files += 1
        content_lines = stats.lines - stats.blank_lines
        reader = _read_text if inp.format == "text" else _read_jsonl
        records.extend(reader(path, name, inp, max_line_bytes, rejects, stats))
        if stats.lines - stats.blank_lines == content_lines:
            stats.empty_files += 1
            if warn is not None:
                warn(f"{name}: empty input file (no non-blank line), category {inp.category!r}")
    stats.records = len(records)
    stats.rejected = len(rejects.rows) - before
    out = stats.__dict__.copy()
    out["compressed_files"] = dict(sorted(stats.compressed_files.items()))
    return records, out


def plan_spans(files: list[tuple[int, InputConfig, Path]], max_bytes: int) -> list[Span]:
    """Cut every file into spans of about `max_bytes` at line starts, in file order; the shards of a run.

    A compressed file, a plain-text file (documents are blocks of lines, which a cut could split) and a file of
    at most `max_bytes` are one span each. The plan depends only on the files and `max_bytes`, never on how many
    workers run it. Cut points are found by one pass over each large file that counts its newlines (so every
    span knows its first line number, and rejects name real lines)."""
    spans: list[Span] = []
    for fi, (_, inp, path) in enumerate(files):
        size = path.stat().st_size
        if inp.format == "text" or size <= max_bytes or sniff(path) is not None:
            spans.append(Span(fi))
            continue
        cuts = [(0, 1)]
        target, line, offset = max_bytes, 1, 0
        with open(path, "rb") as f:
            while True:
                block = f.read(1 << 24)
                if not block:
                    break
                start = 0
                while offset + len(block) > target:  # the first line start at or after `target`
                    nl = block.find(b"\n", max(start, target - offset - 1))
                    if nl < 0:
                        break
                    line += block.count(b"\n", start, nl + 1)
                    start = nl + 1
                    if offset + start < size:
                        cuts.append((offset + start, line))
                    target = offset + start + max_bytes
                line += block.count(b"\n", start)
                offset += len(block)
        spans.extend(Span(fi, s, e, first) for (s, first), (e, _) in
                     zip(cuts, cuts[1:] + [(None, 0)], strict=True))
    return spans


def read_span(files: list[tuple[int, InputConfig, Path]], span: Span, max_line_bytes: int,
              rejects: Rejects) -> tuple[list[Record], dict]:
    """The records of one span, in line order, and its read counts (`ReadStats`, plus `content_lines`)."""
    _, inp, path = files[span.file_index]
    stats = ReadStats()
    name = display_name(inp, path)
    before = len(rejects.rows)
    reader = _read_text if inp.format == "text" else _read_jsonl
    records = list(reader(path, name, inp, max_line_bytes, rejects, stats, span))
    stats.files = 1 if span.start == 0 else 0
    stats.records = len(records)
    stats.rejected = len(rejects.rows) - before
    out = stats.__dict__.copy()
    out["compressed_files"] = dict(sorted(stats.compressed_files.items()))
    out["content_lines"] = stats.lines - stats.blank_lines
    return records, out
