"""End to end: `python -m research.prepare_data` on a small demo corpus, twice, and on bad input."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from research.atomic import atomic_dir
from research.config import to_object
from research.data.demo_corpus import build_demo_corpus
from research.data.prepare import prepare
from research.errors import ConfigError, GraftError

ROOT = Path(__file__).resolve().parents[2]
OVERRIDES = ["buckets=five", "data.max_length=512", "data.num_workers=2"]


def _run(run_root, tokenizer_dir, *extra):
    cmd = [sys.executable, "-m", "research.prepare_data", f"run_root={run_root}",
           f"paths.tokenizer={tokenizer_dir}", *OVERRIDES, *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _hashes(out: Path) -> dict:
    return {str(f.relative_to(out)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(out.rglob("*")) if f.is_file() and f.name != "summary.json"}


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    build_demo_corpus(root / "inputs" / "corpus", seed=7, num_reviews=300, num_wiki=60, num_news=60)
    return root


@pytest.mark.slow
def test_cli_end_to_end_is_deterministic_and_meets_the_contract(run_root, tokenizer_dir):
    """Two runs: 1 worker on one shard per file, then 3 workers on 0.03 MB shards (10 shards, cut inside files)
    with windows of 8 packs: byte-identical outputs (the run record, config.yaml, says how it ran)."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    r = _run(run_root, tokenizer_dir, "data.num_workers=1", "data.pack.window_packs=8")
    assert r.returncode == 0, r.stderr[-2000:]
    out = run_root / "data"
    first = _hashes(out)
    first.pop("config.yaml")
    one = json.loads((out / "summary.json").read_text())["engine"]
    r = _run(run_root, tokenizer_dir, "data.num_workers=3", "data.engine.shard_mb=0.03", "data.pack.window_packs=8")
    assert r.returncode == 0, r.stderr[-2000:]
    again = _hashes(out)
    again.pop("config.yaml")
    assert again == first  # byte-identical, manifest and Arrow files included
    three = json.loads((out / "summary.json").read_text())["engine"]
    assert (one["workers"], one["shards"]) == (1, 3) and (three["workers"], three["shards"]) == (3, 10)
    assert not (run_root / ".data.work").exists()  # the work folder goes once the output is complete

    # killed (SIGKILL, the whole process group) once some shards are tokenized, then rerun with 2 workers: it
    # reuses the finished tasks and ends with the same bytes
    shutil.rmtree(out)
    killed = out
    extra = ["data.engine.shard_mb=0.05", "data.pack.window_packs=8", "data.num_workers=2"]
    cmd = [sys.executable, "-m", "research.prepare_data", f"run_root={run_root}",
           f"paths.tokenizer={tokenizer_dir}", *OVERRIDES, *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    done = run_root / ".data.work" / "logs" / "tokenize" / "completions"
    deadline = time.monotonic() + 240
    while proc.poll() is None and not (done.is_dir() and os.listdir(done)) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not killed.exists() and len(os.listdir(done)) < 6  # it died before the end; no output folder
    r = _run(run_root, tokenizer_dir, *extra)
    assert r.returncode == 0, r.stderr[-2000:]
    log = r.stdout + r.stderr
    assert "prepare_data: resuming the unfinished run" in log
    assert "prepare_data records: 6 of 6 tasks already finished, reused" in log
    assert re.search(r"prepare_data tokenize: [1-5] of 6 tasks already finished, reused", log)
    resumed = _hashes(killed)
    resumed.pop("config.yaml")
    assert resumed == first

    m = json.loads((out / "manifest.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    assert m["max_length"] == 512 and m["pad_token_id"] == tok.pad_token_id != tok.eos_token_id
    assert m["num_buckets"] == len(m["buckets"]) == 5
    assert m["categories"] == ["en_wiki", "zh_news", "zh_reviews"]
    rejects = (out / "rejects.jsonl").read_text().splitlines()
    assert m["records"]["in"] == m["records"]["kept"] + m["records"]["rejected"] and len(rejects) == m["records"]["rejected"]
    steps = m["steps"]
    assert steps["clean"]["reasons"]["mojibake"] > 0 and steps["read"]["rejected"] > 0
    assert steps["dedup"]["exact_removed"] > 0 and steps["dedup"]["near_removed"] > 0
    assert m["hashes"]["outputs"]["rejects.jsonl"] == first["rejects.jsonl"]
    total = 0
    for b in m["buckets"]:
        ds = load_from_disk(str(out / b["path"]))
        assert len(ds) == b["num_packs"] > 0
        # several Arrow files per bucket (one per window), opened memory-mapped
        assert len(ds.cache_files) == b["files"] > 1
        assert set(b["tokens_per_category"]) == set(m["categories"])  # every bucket has every category
        for row in ds:
            n = row["num_tokens"]
            assert len(row["input_ids"]) == len(row["labels"]) == 512
            assert sum(row["doc_lens"]) == n and len(row["doc_categories"]) == len(row["doc_lens"])
            assert all(t == m["pad_token_id"] for t in row["input_ids"][n:])
            assert all(x == -100 for x in row["labels"][n:])
            # each document starts with BOS, whose label is -100
            pos = 0
            for dl in row["doc_lens"]:
                if row["input_ids"][pos] == tok.bos_token_id:
                    assert row["labels"][pos] == -100
                pos += dl
            total += n
    assert total == steps["pack"]["real_tokens"]
    rows = m["buckets"]  # the least-filled pack of each bucket moves on to the next one, and only there
    assert rows[0]["carried_in"]["chunks"] == 0 == rows[-1]["carried_out"]["chunks"]
    assert all(a["carried_out"] == b["carried_in"] for a, b in zip(rows, rows[1:], strict=False))
    assert steps["pack"]["carried_tokens"] == sum(r["carried_out"]["tokens"] for r in rows)
    assert steps["tokenize"]["backend"] == "sentencepiece"
    assert steps["pack"]["packing_efficiency"] > 0.95
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records_in"] == m["records"]["in"] and "timings_s" in summary


@pytest.mark.slow
def test_cli_bad_input_is_one_line_and_exit_2(run_root, tokenizer_dir, tmp_path):
    r = _run(tmp_path, tokenizer_dir, f"paths.inputs={tmp_path}/nowhere")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("error: data.inputs[0].path=") and "no such file or folder" in lines[-1]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "data").exists()


def _compose(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("prepare_data", overrides=overrides)


def test_bad_config_values_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"data.inputs\[2\].weight=-1.0: must be >= 0"):
        to_object(_compose([f"run_root={tmp_path}", "data.inputs.2.weight=-1"]))
    with pytest.raises(ConfigError, match="data.clean.normalization='NFD'"):
        to_object(_compose([f"run_root={tmp_path}", "data.clean.normalization=NFD"]))
    with pytest.raises(ConfigError, match="data.tokenize.backend='spm'"):
        to_object(_compose([f"run_root={tmp_path}", "data.tokenize.backend=spm"]))


@pytest.mark.parametrize("data", ["demo", "zh_only"])
@pytest.mark.parametrize("buckets", ["default", "one", "five", "twenty"])
def test_every_config_composes(data, buckets, tmp_path):
    cfg = to_object(_compose([f"run_root={tmp_path}", f"data={data}", f"buckets={buckets}"]))
    assert cfg.out_dir == f"{tmp_path}/data" and cfg.data.inputs


def test_a_failing_shard_fails_the_run_naming_it_and_writes_nothing(run_root, tokenizer_dir, tmp_path,
                                                                   monkeypatch):
    from research.data import stages

    raw = _compose([f"run_root={run_root}", f"paths.tokenizer={tokenizer_dir}", f"out_dir={tmp_path}/out",
                    *OVERRIDES, "data.num_workers=1", "data.engine.shard_mb=0.05"])
    cfg = to_object(raw)
    tokenize = stages.STAGE_TASKS["tokenize"]

    def fails_on_shard_2(w, shard):
        if shard == 2:
            raise OSError(28, "No space left on device")
        tokenize(w, shard)

    monkeypatch.setitem(stages.STAGE_TASKS, "tokenize", fails_on_shard_2)
    with pytest.raises(GraftError) as e:
        with atomic_dir(cfg.out_dir) as tmp:
            prepare(cfg, raw, Path(tmp), cfg.paths.tokenizer, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "stage tokenize, task 2 (" in msg and "zh_news.jsonl from line " in msg
    assert "No space left on device" in msg and "task_00002.log" in msg
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == [".out.work"]
    # the tasks that finished are kept for the rerun; the failed one is not marked complete
    done = sorted(os.listdir(tmp_path / ".out.work" / "logs" / "tokenize" / "completions"))
    assert "00002" not in done and len(done) >= 2


# ---- BOMs, compressed inputs, empty files and categories ---------------------------------------------------------

def _inputs(*entries):
    """A data.inputs override: (path, category, lang) entries, jsonl_st, weight 1."""
    return "data.inputs=[" + ",".join(f"{{path:'{p}',format:jsonl_st,category:{c},weight:1.0,lang:{lang}}}"
                                      for p, c, lang in entries) + "]"


@pytest.fixture(scope="module")
def small_mix(run_root, tmp_path_factory):
    """The first lines of two demo files, as they are and as gzip (with a BOM) / zstd files of the same names."""
    import gzip

    import zstandard

    d = tmp_path_factory.mktemp("mix")
    corpus = run_root / "inputs" / "corpus"
    texts = {"reviews.jsonl": b"".join((corpus / "zh_reviews.jsonl").read_bytes().splitlines(True)[:150]),
             "wiki.jsonl": b"".join((corpus / "en_wiki.jsonl").read_bytes().splitlines(True)[:40])}
    for sub in ("plain", "packed"):
        (d / sub).mkdir()
    for name, data in texts.items():
        (d / "plain" / name).write_bytes(data)
    (d / "packed" / "reviews.jsonl").write_bytes(gzip.compress(b"\xef\xbb\xbf" + texts["reviews.jsonl"]))
    (d / "packed" / "wiki.jsonl").write_bytes(zstandard.ZstdCompressor().compress(texts["wiki.jsonl"]))
    (d / "empty.jsonl").write_bytes(b"")
    return d


def _prepare(tmp_path, tokenizer_dir, *overrides):
    raw = _compose([f"run_root={tmp_path}", f"paths.tokenizer={tokenizer_dir}", *OVERRIDES, "data.num_workers=1",
                    *overrides])
    cfg = to_object(raw)
    out = tmp_path / "out"
    out.mkdir(parents=True)
    prepare(cfg, raw, out, cfg.paths.tokenizer, progress=False)
    rejects = (out / "rejects.jsonl").read_text()
    for p in {str(Path(i.path).parent) for i in cfg.data.inputs}:
        rejects = rejects.replace(p, "<inputs>")  # rows name files and kept records by path
    return {k: v for k, v in _hashes(out).items() if k.startswith("buckets/")}, rejects, \
        json.loads((out / "manifest.json").read_text())


def test_compressed_and_bom_inputs_give_the_same_buckets(small_mix, tokenizer_dir, tmp_path):
    plain = _prepare(tmp_path / "a", tokenizer_dir, _inputs((small_mix / "plain" / "reviews.jsonl", "rev", "zh"),
                                                            (small_mix / "plain" / "wiki.jsonl", "wiki", "en")))
    packed = _prepare(tmp_path / "b", tokenizer_dir, _inputs((small_mix / "packed" / "reviews.jsonl", "rev", "zh"),
                                                             (small_mix / "packed" / "wiki.jsonl", "wiki", "en")))
    assert packed[0] == plain[0] and packed[1] == plain[1]  # buckets byte for byte, rejects but for the folder
    read = packed[2]["steps"]["read"]
    assert read["boms_stripped"] == 1 and read["compressed_files"] == {"gzip": 1, "zstd": 1}
    assert plain[2]["steps"]["read"]["compressed_files"] == {} and plain[2]["warnings"] == []


def test_allowed_empty_category_is_a_warning_in_log_and_manifest(small_mix, tokenizer_dir, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="graft.data"):
        buckets, _, m = _prepare(tmp_path, tokenizer_dir, "data.allow_empty=true",
                                 _inputs((small_mix / "plain" / "reviews.jsonl", "rev", "zh"),
                                         (small_mix / "empty.jsonl", "nothing", "any")))
    assert buckets and m["categories"] == ["nothing", "rev"]
    assert len(m["warnings"]) == 2 and "empty input file" in m["warnings"][0]
    assert "category 'nothing' has no records left" in m["warnings"][1]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == m["warnings"]


@pytest.mark.slow
def test_cli_empty_category_is_one_line_error_and_writes_nothing(small_mix, tokenizer_dir, tmp_path):
    from tests.conftest import assert_one_line_error

    reviews = small_mix / "plain" / "reviews.jsonl"
    r = _run(tmp_path, tokenizer_dir, _inputs((reviews, "rev", "zh"), (small_mix / "empty.jsonl", "nothing", "any")))
    assert_one_line_error(r, "category 'nothing' is empty", "data.allow_empty=true")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"target": "太短"}\nnot json\n', encoding="utf-8")  # every record rejected
    r = _run(tmp_path, tokenizer_dir, _inputs((reviews, "rev", "zh"), (bad, "bad", "zh")))
    assert_one_line_error(r, "category 'bad' has no records left", "read:invalid_json (1)", "clean:",
                          "data.allow_empty=true")
    r = _run(tmp_path, tokenizer_dir, _inputs((reviews, "rev", "zh"), ("/proc/self/mem", "mem", "any")))
    assert_one_line_error(r, "cannot read '/proc/self/mem'")
    assert not (tmp_path / "data").exists() and not list(tmp_path.glob(".data*"))  # nor a work folder
