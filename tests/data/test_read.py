import json

import pytest

from research.config.data import InputConfig
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
