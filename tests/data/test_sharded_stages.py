"""The sharded stages against the in-memory reference: the same duplicates removed, naming the same kept records,
on a corpus cut into shards inside its files; and the buckets training opens (several Arrow files each)."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from research.config import to_object
from research.contracts import load_buckets, read_manifest
from research.data import read as rd
from research.data.clean import clean, expected_langs
from research.data.dedup import dedup
from research.data.demo_corpus import build_demo_corpus
from research.data.prepare import prepare
from research.rejects import Rejects

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, tokenizer_dir):
    root = tmp_path_factory.mktemp("sharded")
    build_demo_corpus(root / "inputs" / "corpus", seed=11, num_reviews=300, num_wiki=60, num_news=60)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        raw = compose("prepare_data", overrides=[
            f"run_root={root}", f"paths.tokenizer={tokenizer_dir}", "buckets=five", "data.max_length=512",
            "data.num_workers=1", "data.engine.shard_mb=0.04", "data.engine.partitions=3",
            "data.pack.window_packs=4"])
    cfg = to_object(raw)
    out = root / "out"
    out.mkdir()
    summary = prepare(cfg, raw, out, cfg.paths.tokenizer, progress=False)
    return cfg, out, summary


def test_sharded_dedup_equals_the_in_memory_reference(sharded):
    cfg, out, summary = sharded
    assert summary["engine"]["shards"] > 3  # the files are cut: duplicates meet across shards
    rejects = Rejects()
    records, _ = rd.read_inputs(cfg.data.inputs, cfg.data.clean.max_line_bytes, rejects)
    records, _ = clean(records, expected_langs(cfg.data.inputs), cfg.data.clean, rejects, progress=False)
    _, stats = dedup(records, cfg.data.dedup, rejects, progress=False)
    expected = sorted((r["file"], r["line"], r["reason"], r.get("kept")) for r in rejects.rows if r["step"] == "dedup")
    got = [json.loads(line) for line in (out / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted((r["file"], r["line"], r["reason"], r.get("kept")) for r in got if r["step"] == "dedup") == expected
    m = json.loads((out / "manifest.json").read_text())
    assert stats["exact_removed"] > 0 and stats["near_removed"] > 0
    for key in ("exact_removed", "exact_clusters", "near_removed", "near_clusters", "kept"):
        assert m["steps"]["dedup"][key] == stats[key], key
    # and every other reject, step by step, as the reference steps give them
    assert sorted((r["step"], r["file"], r["line"], r["reason"]) for r in got if r["step"] in ("read", "clean")) == \
        sorted((r["step"], r["file"], r["line"], r["reason"]) for r in rejects.rows if r["step"] in ("read", "clean"))
    order = [str(Path(i.path)) for i in cfg.data.inputs]  # corpus order: input order, then line
    keys = [(order.index(r["file"]), r["line"]) for r in got]
    assert keys == sorted(keys)


def test_buckets_are_sharded_arrow_that_training_opens_memory_mapped(sharded):
    _, out, _ = sharded
    m = read_manifest(out)
    buckets = load_buckets(m)
    rows = m.raw["buckets"]
    assert sum(b["files"] for b in rows) > len(rows)  # windows of 4 packs: several files per bucket
    for ds, row in zip(buckets, rows, strict=True):
        assert len(ds) == row["num_packs"] and len(ds.cache_files) == row["files"]
        assert all(f["filename"].startswith(str(out)) for f in ds.cache_files)  # read in place, not copied
        assert sum(ds["num_tokens"]) == row["tokens"]
    pack = m.raw["steps"]["pack"]
    assert abs(pack["real_tokens"] / pack["slots"] - pack["packing_efficiency"]) < 1e-6
    assert pack["real_tokens"] == m.raw["steps"]["bins"]["weighted_tokens"] - pack["dropped_masked_tokens"]
