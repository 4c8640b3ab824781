"""research.rejects: the rows a stage drops, their order of fields, counts per reason and the jsonl round trip."""

import json

from research.data.document import Record
from research.rejects import SNIPPET_CHARS, Rejects


def test_row_fields_in_documented_order_with_none_extras_left_out():
    r = Rejects()
    r.add("clean", "in/zh.jsonl", 7, "too_short", "短文本", detail="3 chars", kept=None, score=0.25)
    (row,) = r.rows
    assert row == {"step": "clean", "file": "in/zh.jsonl", "line": 7, "reason": "too_short", "detail": "3 chars",
                   "score": 0.25, "text": "短文本"}
    assert list(row) == ["step", "file", "line", "reason", "detail", "score", "text"]


def test_origin_key_is_configurable_and_file_becomes_a_string(tmp_path):
    r = Rejects("dataset")
    r.add("mmlu", tmp_path / "dev.csv", 2, "missing choices", id="q1")
    (row,) = r.rows
    assert row == {"dataset": "mmlu", "file": str(tmp_path / "dev.csv"), "line": 2, "reason": "missing choices",
                   "id": "q1"}
    assert "step" not in row and "text" not in row  # no text given: no snippet


def test_text_is_cut_to_the_snippet_length_and_empty_text_is_kept():
    long = "字" * (SNIPPET_CHARS + 50)
    r = Rejects()
    r.add("read", "a.txt", 1, "bad", long)
    r.add("read", "a.txt", 2, "bad", "")
    assert r.rows[0]["text"] == "字" * SNIPPET_CHARS and len(r.rows[0]["text"]) == 200
    assert r.rows[1]["text"] == ""


def test_add_record_takes_origin_and_text_from_the_record():
    rec = Record(file="corpus/news.jsonl", line=12, category="zh_news", source="问：", target="答案" * 150)
    r = Rejects()
    r.add_record("dedup", rec, "exact_duplicate", kept="corpus/news.jsonl:3")
    assert r.rows == [{"step": "dedup", "file": "corpus/news.jsonl", "line": 12, "reason": "exact_duplicate",
                       "kept": "corpus/news.jsonl:3", "text": ("问：" + "答案" * 150)[:SNIPPET_CHARS]}]


def test_count_and_reasons_per_origin():
    r = Rejects()
    for where, reason in [("clean", "too_short"), ("clean", "bad_chars"), ("clean", "too_short"),
                          ("dedup", "near_duplicate"), ("read", "invalid_json")]:
        r.add(where, "f", 1, reason)
    assert r.count() == 5
    assert (r.count("clean"), r.count("dedup"), r.count("score")) == (3, 1, 0)
    assert r.reasons("clean") == {"bad_chars": 1, "too_short": 2}
    assert list(r.reasons()) == ["bad_chars", "invalid_json", "near_duplicate", "too_short"]  # sorted by reason
    assert r.reasons() == {"bad_chars": 1, "invalid_json": 1, "near_duplicate": 1, "too_short": 2}
    assert r.reasons("score") == {}
    assert sum(r.reasons().values()) == r.count()


def test_write_round_trips_as_utf8_jsonl(tmp_path):
    r = Rejects("dataset")
    r.add("cmmlu", "dev/历史.csv", 3, "duplicate id 'q1' (first at 2)", "题目：|\"引号\"\n第二行", id="q1")
    r.add("cmmlu", "dev/历史.csv", 9, "missing choice text")
    path = tmp_path / "rejects.jsonl"
    r.write(path)
    raw = path.read_text(encoding="utf-8")
    assert raw.count("\n") == 2 and raw.endswith("\n")
    assert "历史" in raw  # written as UTF-8, not \u escapes
    assert [json.loads(line) for line in raw.splitlines()] == r.rows


def test_write_with_no_rows_leaves_an_empty_file(tmp_path):
    path = tmp_path / "rejects.jsonl"
    Rejects().write(path)
    assert path.read_bytes() == b""
