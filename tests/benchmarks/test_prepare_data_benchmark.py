"""benchmarks/prepare_data.py's helpers on tiny inputs, without a ColossalAI checkout: the reference-format reader,
the corpus scaling, the reference's bin resolution (against `datasets`' own percent splits), the simulation of its
packer, the readers of both outputs, the process-tree memory poll, the Graft overrides (they must compose with
the project's config) and the tables."""

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("prepare_data_benchmark", ROOT / "benchmarks" / "prepare_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _docs(cat, n):
    return [{"source": "", "target": f"{cat} document {i} " + "字" * (i + 1), "category": cat} for i in range(n)]


def test_read_reference_format_keeps_what_the_reference_can_read(bench, tmp_path):
    f = tmp_path / "mixed.jsonl"
    lines = [json.dumps({"source": "q", "target": "an answer", "category": "a"}).encode(),
             json.dumps({"target": "no source", "category": "b"}).encode(),
             json.dumps({"source": "", "target": "no category"}).encode(),
             b"", b'{"source": "", "target": "broken', b'{"source": "", "target": 42, "category": "a"}',
             b'["not", "an", "object"]', json.dumps({"source": "", "target": "  ", "category": "a"}).encode(),
             b'{"source": "", "target": "bad \xff byte", "category": "a"}',
             b'{"source": "", "target": "lone \\ud800", "category": "a"}']
    f.write_bytes(b"\n".join(lines) + b"\n")
    by_cat, dropped = bench.read_reference_format([f])
    assert {c: [d["target"] for d in docs] for c, docs in by_cat.items()} == {
        "a": ["an answer"], "b": ["no source"], "mixed": ["no category"]}
    assert by_cat["b"][0]["source"] == "" and by_cat["mixed"][0]["category"] == "mixed"
    assert dropped == {"invalid_json": 1, "wrong_field_type": 1, "not_an_object": 1, "empty_target": 1,
                       "invalid_utf8": 1, "lone_surrogate": 1}


def test_scale_corpus_makes_distinct_real_copies(bench):
    by_cat = {"a": _docs("a", 5)[::-1], "b": _docs("b", 3)}  # a's input order: longest first
    assert bench.scale_corpus(by_cat, 1) == by_cat
    for scale in (2, 3, 4, 5):
        scaled = bench.scale_corpus(by_cat, scale)
        for cat, docs in by_cat.items():
            out, n = scaled[cat], len(docs)
            originals = docs if scale % 2 else []
            assert len(out) == len(originals) + scale // 2 * n and out[:len(originals)] == originals
            by_length = sorted(docs, key=lambda d: len(d["target"]))
            for j in range(1, scale // 2 + 1):
                for i, d in enumerate(docs):
                    got = out[len(originals) + (j - 1) * n + i]
                    partner = by_length[(by_length.index(d) + j) % n]
                    assert got == {"source": d["source"], "target": d["target"] + "\n" + partner["target"],
                                   "category": cat}
            chars = sum(len(d["target"]) for d in out)
            assert abs(chars - scale * sum(len(d["target"]) for d in docs)) <= scale // 2 * n  # the "\n"s
            assert len({d["target"] for d in out}) == len(out)  # no exact duplicate
    with pytest.raises(ValueError):
        bench.scale_docs(by_cat["a"], 0)


def test_write_corpus_one_file_per_category(bench, tmp_path):
    files = bench.write_corpus({"zh/news": _docs("zh/news", 2), "en": _docs("en", 1)}, tmp_path / "c")
    assert [(p.name, c) for p, c in files] == [("zh_news.jsonl", "zh/news"), ("en.jsonl", "en")]
    rows = [json.loads(x) for x in files[0][0].read_text(encoding="utf-8").splitlines()]
    assert rows == _docs("zh/news", 2)


@pytest.mark.parametrize("num_rows,num_bins", [(7, 3), (101, 10), (33, 7)])
def test_reference_splits_match_datasets_percent_slices(bench, tmp_path, num_rows, num_bins):
    import datasets

    datasets.disable_progress_bars()
    f = tmp_path / "rows.jsonl"
    f.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(num_rows)))
    splits = bench.reference_splits(num_rows, num_bins)
    interval = -(-100 // num_bins)  # what the reference script builds
    names = [f"train[{i}%:{min(i + interval, 100)}%]" for i in range(0, 100, interval)]
    parts = datasets.load_dataset("json", data_files=str(f), split=names, cache_dir=str(tmp_path / "cache"))
    assert [list(p["i"]) for p in parts] == [list(range(a, b)) for a, b in splits]


def test_reference_bins_follow_listdir_order(bench, tmp_path, monkeypatch):
    d = tmp_path / "in"
    bench.write_corpus({"a": _docs("a", 6), "b": _docs("b", 4)}, d)
    monkeypatch.setattr(bench.os, "listdir", lambda p: ["b.jsonl", "notes.txt", "a.jsonl"])
    got = bench.reference_bins(d, 2)
    assert got["rows"] == 10 and got["splits"] == [(0, 5), (5, 10)]
    assert got["categories"] == [["a", "b"], ["a"]]  # b's 4 rows first, then a's 6


def test_simulate_reference_packer(bench):
    # one buffer holds everything: greedy in order, the last partial pack kept
    assert bench.simulate_reference_packer([3, 3, 3], 4) == [3, 3, 3]
    assert bench.simulate_reference_packer([1, 2, 1, 4], 4) == [4, 4]
    # buffers of >= 4 tokens: the partial pack at each buffer's end is dropped, except the very last one's
    assert bench.simulate_reference_packer([3, 2, 4, 1], 4, num_packed_sequences=1) == [3, 1]
    assert bench.simulate_reference_packer([], 4) == []


def test_read_reference_output(bench, tmp_path):
    from datasets import Dataset

    out = tmp_path / "out"
    Dataset.from_dict({"input_ids": [[1, 5, 6, 2], [1, 7, 2]], "labels": [[-100, 5, 6, 2], [-100, 7, 2]]}
                      ).save_to_disk(str(out / "arrow" / "part-00000"), num_shards=2)
    Dataset.from_dict({"input_ids": [[1, 9, 2, 1, 8, 2]], "labels": [[-100, -100, -100, -100, 8, 2]]}
                      ).save_to_disk(str(out / "arrow" / "part-00001"))
    got = bench.read_reference_output(out, max_length=8)
    assert [(p["name"], p["rows"], p["tokens"], p["label_tokens"]) for p in got["parts"]] == [
        ("part-00000", 2, 7, 5), ("part-00001", 1, 6, 2)]
    assert got["rows"] == 3 and got["tokens"] == 13 and got["longest"] == 6
    assert got["packing_efficiency"] == pytest.approx(13 / 24)


def test_read_graft_output(bench, tmp_path):
    import numpy as np

    from research.contracts import bucket_name, pack_table, save_bucket, write_manifest

    out = tmp_path / "data"
    rows = []
    for k, (lens, cats) in enumerate([([[3, 2], [4]], [["a", "b"], ["a"]]), ([[5]], [["b"]])]):
        n = len(lens)
        ids = np.zeros((n, 6), dtype=np.int32)
        save_bucket(pack_table(ids, ids, lens, cats, [sum(x) for x in lens]), out / "buckets" / bucket_name(k))
        rows.append({"name": bucket_name(k), "path": f"buckets/{bucket_name(k)}"})
    write_manifest(out, {"max_length": 6, "pad_token_id": 0, "categories": ["a", "b"], "buckets": rows,
                         "records": {"in": 5, "kept": 4}, "steps": {"tokenize": {"tokens": 15},
                                                                    "clean": {"reasons": {"mojibake": 1}}}})
    got = bench.read_graft_output(out)
    assert [(b["packs"], b["tokens"], b["tokens_per_category"]) for b in got["buckets"]] == [
        (2, 9, {"a": 7, "b": 2}), (1, 5, {"b": 5})]
    assert got["tokens"] == 14 and got["input_tokens"] == 15 and got["packs"] == 3
    assert got["packing_efficiency"] == pytest.approx(14 / 18)
    assert (got["records_in"], got["records_kept"], got["clean_reasons"]) == (5, 4, {"mojibake": 1})
    row = bench.graft_row({"seconds": 2.0, "peak_rss_largest": 1, "peak_rss_total": 2, "max_processes": 1}, got,
                          scale=1, mode="same", workers=2, num_cats=2)
    assert (row["lost_tokens"], row["cats_min"], row["cats_max"]) == (1, 1, 2)


def test_run_monitored_sees_a_child_process(bench, tmp_path):
    code = ("import subprocess, sys, time\n"
            "x = bytearray(120 * 2**20)\n"
            "subprocess.run([sys.executable, '-c', 'import time; y = bytearray(60 * 2**20); time.sleep(0.6)'])")
    got = bench.run_monitored([sys.executable, "-c", code], tmp_path, None, tmp_path / "log", timeout=60)
    assert got["rc"] == 0 and got["seconds"] > 0.5
    assert got["peak_rss_largest"] >= 120 * 2**20
    assert got["peak_rss_total"] >= 180 * 2**20 and got["max_processes"] == 2


@pytest.mark.parametrize("mode", ["same", "full"])
def test_graft_overrides_compose(bench, tmp_path, mode):
    from hydra import compose, initialize_config_dir

    from research.config import to_object

    files = bench.write_corpus({"zh_news": _docs("zh_news", 2), "it's": _docs("it's", 1)}, tmp_path / "c")
    overrides = bench.graft_overrides(files, {"zh_news": "zh"}, tmp_path / "tok", tmp_path / "run", 2, 512, 5,
                                      mode)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = to_object(compose("prepare_data", overrides=overrides))
    d = cfg.data
    assert [(i.path, i.category, i.weight, i.lang) for i in d.inputs] == [
        (str(files[0][0]), "zh_news", 1.0, "zh" if mode == "full" else "any"), (str(files[1][0]), "it's", 1.0, "any")]
    assert (d.num_workers, d.max_length, cfg.buckets.num_bins) == (2, 512, 5)
    assert cfg.paths.tokenizer == str(tmp_path / "tok") and cfg.out_dir == str(tmp_path / "run" / "data")
    if mode == "same":
        assert (d.dedup.exact, d.dedup.near, d.score.mode) == (False, False, "none")
        assert (d.clean.normalization, d.clean.min_chars, d.clean.menu_min_separators) == ("none", 0, 0)
        assert d.clean.max_symbol_ratio == d.clean.max_dup_ngram_fraction == d.clean.max_dup_line_fraction == 1.0
    else:  # the default config
        assert d.dedup.exact and d.dedup.near and d.score.mode != "none" and d.clean.min_chars > 0


def _row(bench, system, workers, seconds, **kw):
    r = {"scale": 1, "system": system, "mode": "same", "workers": workers, "records_in": 10, "records_kept": 10,
         "input_tokens": 1000, "output_tokens": 900, "lost_tokens": 100, "packs": 3, "packing_efficiency": 0.9,
         "peak_rss_largest": 2**20 * 300, "peak_rss_total": 2**20 * 500, "max_processes": 3, "cats_min": 1,
         "cats_max": 2, "num_categories": 3, "bucket_tokens_min": 10, "bucket_tokens_max": 500, "seconds": seconds,
         "max_length": 4096, "num_bins": 10, "load_before": 1.0}
    return r | kw


def test_tables_and_csv(bench, tmp_path):
    rows = [_row(bench, "reference", 2, 10.0, truncated_tokens=40, truncated_docs=1, dropped_tail_tokens=60,
                 all_masked_docs=0, simulated="exact"),
            _row(bench, "graft", 1, 5.0, lost_tokens=0), _row(bench, "graft", 2, 4.0, lost_tokens=0)]
    runs = bench.format_runs(rows)
    assert "| 1x | graft | same | 2 |" in runs and "| 2.00x |" in runs and "| 2.50x |" in runs
    assert "100 (10.00 %)" in runs and "1-2 of 3" in runs and "300 / 500 (3)" in runs
    scaling = bench.format_scaling(rows)
    assert "| graft same, 2 workers | 225 | 300 |" in scaling
    assert "| 1x | 1,000 | 40 (1) | 60 | 100 (10.00 %) | 90.00 % | 0 | exact |" in bench.format_reference_losses(rows)
    legacy = tmp_path / "legacy.csv"
    legacy.write_text("time,device,workers\n")
    assert bench.csv_path(str(legacy)) == bench.DEFAULT_CSV
    out = tmp_path / "new.csv"
    assert bench.csv_path(str(out)) == out
    bench.append_csv(out, rows, "cpu", "demo", {"graft": {"datasets": "x"}, "reference": {"datasets": "4.0.0"}})
    bench.append_csv(out, rows[:1], "cpu", "demo", {"graft": {}, "reference": {"datasets": "4.0.0"}})
    table = list(csv.DictReader(out.open()))
    assert len(table) == 4 and list(table[0]) == bench.CSV_COLUMNS
    assert json.loads(table[0]["versions"]) == {"datasets": "4.0.0"} and table[1]["tokens_per_s"] == "180"
