"""research.train.checkpoint without processes: what defines a run, and the one-line refusal of another one."""

import json

import pytest
from omegaconf import OmegaConf

from research.errors import GraftError
from research.train import checkpoint as ckpt


def _raw(**train):
    return OmegaConf.create({
        "run_root": "/r", "out_dir": "/r/train", "seed": 1, "overwrite": True,
        "paths": {"data": "/r/data", "model": "/r/model"},
        "train": {"lr": 3e-4, "betas": [0.9, 0.95], "max_steps": 0, "log_every": 1, "checkpoint_every": 100,
                  "keep_last": 3, "num_workers": 0, "resume": True, **train},
        "schedule": {"name": "s", "stages": [{"name": "a", "mix": {}}, {"name": "b", "mix": {"zh": 2.0}}]},
        "logger": {"name": "none", "tags": ["x"]}, "eval": {"batch_size": 4}, "model": {"path": None, "fused_ce": False},
    })


MANIFEST = {"max_length": 32, "buckets": [{"name": "bucket_000", "num_packs": 8}],
            "config": {"run_root": "/r"}, "versions": {"torch": "2"},
            "hashes": {"inputs": {"/r/inputs/a.txt": "aa"}, "outputs": {"buckets/bucket_000/data.arrow": "bb"}}}


def test_run_record_keeps_what_defines_the_run():
    record = ckpt.run_record(_raw(), MANIFEST)
    assert record["train.lr"] == 3e-4 and record["train.betas[1]"] == 0.95 and record["seed"] == 1
    assert record["schedule.stages[1].mix.zh"] == 2.0 and record["schedule.stages[0].mix"] == {}
    assert record["model.fused_ce"] is False
    for key in ("run_root", "out_dir", "overwrite", "paths.data", "paths.model", "train.max_steps", "train.log_every",
                "train.checkpoint_every", "train.keep_last", "train.num_workers", "train.resume", "logger.name",
                "logger.tags[0]", "eval.batch_size", "model.path"):
        assert key not in record and ckpt.resumable(key), key
    assert not ckpt.resumable(ckpt.DATA_KEY) and record[ckpt.DATA_KEY] == ckpt.data_identity(MANIFEST)
    json.dumps(record)  # goes into state.json


def test_data_identity_is_the_content_not_the_place():
    moved = {**MANIFEST, "config": {"run_root": "/elsewhere"}, "versions": {"torch": "3"},
             "hashes": {**MANIFEST["hashes"], "inputs": {"/elsewhere/a.txt": "aa"}}}
    assert ckpt.data_identity(moved) == ckpt.data_identity(MANIFEST)
    other = {**MANIFEST, "hashes": {**MANIFEST["hashes"], "outputs": {"buckets/bucket_000/data.arrow": "cc"}}}
    assert ckpt.data_identity(other) != ckpt.data_identity(MANIFEST)
    assert ckpt.data_identity({**MANIFEST, "max_length": 64}) != ckpt.data_identity(MANIFEST)


def test_check_same_run_lists_every_difference_on_one_line(tmp_path):
    saved = ckpt.run_record(_raw(), MANIFEST)
    same = ckpt.run_record(_raw(max_steps=50, keep_last=1, log_every=5), {**MANIFEST, "config": {}})
    ckpt.check_same_run(tmp_path, saved, same)  # only resumable keys changed
    ckpt.check_same_run(tmp_path, None, same)  # a checkpoint from before run records: not checked
    other = ckpt.run_record(_raw(lr=1e-3, gradient_checkpointing=True), {**MANIFEST, "max_length": 64})
    with pytest.raises(GraftError) as e:
        ckpt.check_same_run(tmp_path, saved, other)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path) in msg
    assert "train.lr 0.0003 -> 0.001" in msg and "train.gradient_checkpointing <unset> -> true" in msg
    assert f'{ckpt.DATA_KEY} "{saved[ckpt.DATA_KEY]}" -> "{other[ckpt.DATA_KEY]}"' in msg
    assert "train.resume=false" in msg
    # A key that is resumable now is not compared even if an older record holds it.
    ckpt.check_same_run(tmp_path, {**same, "train.max_steps": 3}, same)


def test_docs_list_the_resumable_keys():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "apps" / "train.md").read_text(encoding="utf-8")
    section = text.split("The keys that may change on resume", 1)[1].split("\n\n", 2)[1]
    listed = re.findall(r"`([^`]+)`", section)
    assert sorted(listed) == sorted(ckpt.RESUMABLE)
