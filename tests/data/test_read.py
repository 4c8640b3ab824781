import bz2
import gzip
import json
import lzma
import os
import zipfile

import pytest
import zstandard

from research.config.data import InputConfig
from research.data import read as read_mod
from research.data.read import read_inputs, resolve_inputs
from research.errors import GraftError
from research.rejects import Rejects


def _write(path, lines):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_bad_lines_are_rejected_and_neighbours_kept(tmp_path):
    good = lambda t: json.dumps({"source": "", "target": t, "category": "x"}, ensure_ascii=False).encode()  # noqa: E731
    f = _write(tmp_path / "a.jsonl", [
        good("第一条"),
        b'{"source": "", "target": "broken',
        good("第二条"),
        b'{"source": "", "target": 7}',
        b'{"source": 1, "target": "x"}',
        b'{"source": ""}',
        b'[1, 2]',
        good("bad \xff byte")[:-2] + b'\xff"}',
        b"",
        b'{"target": "no source field is fine"}',
        b'{"source": "q", "target": ""}',
        good("x" * 5000),
    ])
    rejects = Rejects()
    recs, stats = read_inputs([InputConfig(path=str(f), category="c")], max_line_bytes=1000, rejects=rejects)
    assert [r.target for r in recs] == ["第一条", "第二条", "no source field is fine", ""]
    assert [r.line for r in recs] == [1, 3, 10, 11]
    assert all(r.category == "c" for r in recs)
    reasons = {r["line"]: r["reason"] for r in rejects.rows}
    assert reasons == {2: "invalid_json", 4: "wrong_type:target", 5: "wrong_type:source", 6: "missing_field:target",
                       7: "not_an_object", 8: "invalid_utf8", 12: "line_too_long"}
    assert stats["records"] + stats["rejected"] == 11 and stats["blank_lines"] == 1
    assert all(r["file"] == str(f) for r in rejects.rows)


def test_fifty_megabyte_line_is_rejected_without_parsing(tmp_path):
    f = tmp_path / "big.jsonl"
    with open(f, "wb") as fh:
        fh.write(b'{"text": "ok line"}\n{"text": "' + b"a" * 50_000_000 + b'"}\n{"text": "after"}\n')
    rejects = Rejects()
    recs, _ = read_inputs([InputConfig(path=str(f), format="jsonl_text")], 8_000_000, rejects)
    assert [r.target for r in recs] == ["ok line", "after"]
    assert rejects.rows[0]["reason"] == "line_too_long" and rejects.rows[0]["line"] == 2


def test_text_blocks_and_folders(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    _write(d / "b.txt", [b"para one line 1", b"para one line 2", b"", b"", b"para two", b"bad \xc3"])
    _write(d / "a.txt", [b"first file"])
    (d / "empty.txt").write_bytes(b"")
    rejects = Rejects()
    recs, stats = read_inputs([InputConfig(path=str(d), format="text", category="t")], 1000, rejects)
    assert [(r.file.rsplit("/", 1)[-1], r.line, r.target) for r in recs] == [
        ("a.txt", 1, "first file"), ("b.txt", 1, "para one line 1\npara one line 2")]
    assert [(r["line"], r["reason"]) for r in rejects.rows] == [(5, "invalid_utf8")]
    assert stats["empty_files"] == 1 and stats["files"] == 3


def test_missing_inputs_fail_before_work(tmp_path):
    with pytest.raises(GraftError, match=r"data.inputs\[1\].path=.*no such file"):
        resolve_inputs([InputConfig(path=str(_write(tmp_path / "a.jsonl", [b"{}"]))),
                        InputConfig(path=str(tmp_path / "missing.jsonl"))])
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(GraftError, match="folder holds no files"):
        resolve_inputs([InputConfig(path=str(tmp_path / "empty_dir"))])
    with pytest.raises(GraftError, match="data.inputs is empty"):
        resolve_inputs([])


# ---- byte order marks, compressed inputs, unreadable and empty files ---------------------------------------------

JSONL = "".join(json.dumps({"source": "", "target": t}, ensure_ascii=False) + "\n"
                for t in ["第一条记录", "第二条记录", "third record"]).encode()
COMPRESS = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress,
            "zstd": lambda b: zstandard.ZstdCompressor().compress(b[:40]) + zstandard.ZstdCompressor().compress(b[40:])}


def _read(path, fmt="jsonl_st", warn=None):
    rejects = Rejects()
    recs, stats = read_inputs([InputConfig(path=str(path), format=fmt, category="c")], 1000, rejects, warn=warn)
    return recs, stats, rejects


def test_utf8_bom_is_dropped_and_counted(tmp_path):
    f = tmp_path / "bom.jsonl"
    f.write_bytes(read_mod.BOM + JSONL)
    recs, stats, rejects = _read(f)
    assert [r.target for r in recs] == ["第一条记录", "第二条记录", "third record"] and not rejects.rows
    assert stats["boms_stripped"] == 1
    t = tmp_path / "bom.txt"
    t.write_bytes(read_mod.BOM + "第一段\n\n第二段\n".encode())
    recs, stats, _ = _read(t, "text")
    assert [r.target for r in recs] == ["第一段", "第二段"] and "\ufeff" not in recs[0].target
    assert stats["boms_stripped"] == 1
    recs, stats, _ = _read(_write(tmp_path / "plain.jsonl", [JSONL.rstrip(b"\n")]))
    assert stats["boms_stripped"] == 0 and stats["compressed_files"] == {}


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_compressed_inputs_read_like_plain_ones_whatever_their_name(tmp_path, kind):
    plain, _, _ = _read(_write(tmp_path / "plain.jsonl", [JSONL.rstrip(b"\n")]))
    f = tmp_path / "looks_plain.jsonl"  # recognised by its first bytes, not its suffix
    f.write_bytes(COMPRESS[kind](read_mod.BOM + JSONL))
    recs, stats, rejects = _read(f)
    assert [(r.line, r.target) for r in recs] == [(r.line, r.target) for r in plain] and not rejects.rows
    assert stats["compressed_files"] == {kind: 1} and stats["boms_stripped"] == 1


def test_zip_utf16_and_missing_zstandard_fail_before_work_naming_the_file(tmp_path, monkeypatch):
    z = tmp_path / "corpus.jsonl"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("corpus.jsonl", JSONL)
    with pytest.raises(GraftError, match=r"data.inputs\[0\].*corpus.jsonl.* is a zip archive"):
        resolve_inputs([InputConfig(path=str(z))])
    u = tmp_path / "utf16.jsonl"
    u.write_bytes(JSONL.decode().encode("utf-16"))
    with pytest.raises(GraftError, match="utf16.jsonl.* is UTF-16 text"):
        resolve_inputs([InputConfig(path=str(u))])
    c = tmp_path / "c.jsonl.zst"
    c.write_bytes(COMPRESS["zstd"](JSONL))
    monkeypatch.setattr(read_mod, "_zstandard", lambda: None)
    with pytest.raises(GraftError, match=r"c.jsonl.zst.* is zstd-compressed and the zstandard package is not"):
        resolve_inputs([InputConfig(path=str(c))])


def test_truncated_gzip_is_one_error_naming_the_file(tmp_path):
    f = tmp_path / "cut.jsonl.gz"
    f.write_bytes(gzip.compress(JSONL * 50)[:-30])
    with pytest.raises(GraftError, match=r"cut.jsonl.gz: corrupt or truncated gzip data \(EOFError"):
        _read(f)


def test_empty_files_are_counted_and_warned(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.jsonl").write_bytes(b"")
    (d / "b.jsonl").write_bytes(gzip.compress(b"\n \n"))  # blank once decompressed
    _write(d / "c.jsonl", [JSONL.rstrip(b"\n")])
    warnings = []
    recs, stats, _ = _read(d, warn=warnings.append)
    assert len(recs) == 3 and stats["empty_files"] == 2 and stats["files"] == 3
    assert [w.split(":")[0] for w in warnings] == [str(d / "a.jsonl"), str(d / "b.jsonl")]
    assert all("empty input file" in w and "'c'" in w for w in warnings)


def test_unreadable_inputs_fail_before_work_naming_the_file(tmp_path):
    d = tmp_path / "docs"
    (d / "nested").mkdir(parents=True)
    _write(d / "a.jsonl", [b"{}"])
    with pytest.raises(GraftError, match=r"holds a folder, '.*nested'; folders are not read recursively"):
        resolve_inputs([InputConfig(path=str(d))])
    (d / "nested").rmdir()
    os.mkfifo(d / "pipe.jsonl")
    with pytest.raises(GraftError, match=r"pipe.jsonl' is not a regular file"):
        resolve_inputs([InputConfig(path=str(d))])
    with pytest.raises(GraftError, match=r"data.inputs\[0\].path=.*pipe.jsonl': not a regular file or folder"):
        resolve_inputs([InputConfig(path=str(d / "pipe.jsonl"))])
    # A regular file whose first byte cannot be read (offset 0 of a process's memory is unmapped): EIO, even as root.
    if os.path.isfile("/proc/self/mem"):
        with pytest.raises(GraftError, match=r"cannot read '/proc/self/mem' \(Input/output error\)"):
            resolve_inputs([InputConfig(path="/proc/self/mem")])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_file_without_read_permission_fails_before_work(tmp_path):
    f = _write(tmp_path / "secret.jsonl", [b"{}"])
    f.chmod(0)
    try:
        with pytest.raises(GraftError, match=r"cannot read .*secret.jsonl' \(Permission denied\)"):
            resolve_inputs([InputConfig(path=str(f))])
    finally:
        f.chmod(0o644)


def test_file_that_disappears_after_the_check_is_one_error_naming_it(tmp_path, monkeypatch):
    a, b = _write(tmp_path / "a.jsonl", [JSONL.rstrip(b"\n")]), _write(tmp_path / "b.jsonl", [JSONL.rstrip(b"\n")])
    inputs = [InputConfig(path=str(a), category="x"), InputConfig(path=str(b), category="y")]
    checked = resolve_inputs(inputs)
    b.unlink()
    monkeypatch.setattr(read_mod, "resolve_inputs", lambda _inputs: checked)
    with pytest.raises(GraftError, match=r"b.jsonl: cannot read \(No such file or directory\)"):
        read_inputs(inputs, 1000, Rejects())
