"""research.tracking: W&B disabled (wandb never imported) and offline (a local run holding the resolved config,
the logged steps and the summary). Nothing here reaches the network: the only real run is mode=offline, with every
W&B folder under tmp_path."""

import json
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from research import tracking
from research.config.logger import LoggerConfig
from research.errors import GraftError


@dataclass
class Cfg:
    """The two parts of GraftConfig that tracking reads."""

    logger: LoggerConfig
    run_root: str


@pytest.fixture(autouse=True)
def no_run_left_behind():
    assert tracking._run is None
    yield
    tracking.finish()
    assert tracking._run is None


def raw_config():
    return OmegaConf.create({"run_root": "runs/demo", "out_dir": "${run_root}/train", "seed": 3,
                             "train": {"lr": 0.001, "stages": ["warmup", "replay"]}})


def test_disabled_returns_none_without_importing_wandb(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # any `import wandb` now raises ImportError
    cfg = Cfg(LoggerConfig(name="none", wandb_mode="disabled"), str(tmp_path / "root"))
    assert tracking.init_run(cfg, raw_config(), job_type="train") is None
    assert tracking._run is None
    tracking.log({"loss": 1.0}, step=1)  # no run: every call is a no-op
    tracking.summary({"final_loss": 1.0})
    tracking.finish()
    assert not (tmp_path / "root").exists()


def test_missing_wandb_is_a_one_line_error_naming_the_mode(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    cfg = Cfg(LoggerConfig(wandb_mode="offline"), str(tmp_path / "root"))
    with pytest.raises(GraftError) as e:
        tracking.init_run(cfg, raw_config(), job_type="train")
    assert str(e.value) == "logger.wandb_mode='offline' needs the wandb package; install it or use logger=none"
    assert e.value.__cause__ is None and e.value.__suppress_context__
    assert tracking._run is None and not (tmp_path / "root").exists()


# ---- a real offline run --------------------------------------------------------------------------------------

def read_wandb_records(path: Path) -> list:
    """The records of an offline run's .wandb file: a ':W&B' header, then LevelDB-log framed protobuf records
    (32 KiB blocks; each chunk has crc32 (4 bytes), length (2), type (1: full, 2: first, 3: middle, 4: last))."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:8]
    pos, block, chunk, records = 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if n == 0 and kind == 0:
            pos += block - pos % block
            continue
        chunk += data[pos + 7:pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(chunk)
            records.append(rec)
            chunk = b""
    return records


def test_offline_run_records_config_steps_and_summary_under_run_root(tmp_path, monkeypatch):
    for var, sub in [("WANDB_DIR", "wandb_dir"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config"),
                     ("WANDB_DATA_DIR", "data"), ("WANDB_ARTIFACT_DIR", "artifacts")]:
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    root = tmp_path / "runs" / "demo"  # does not exist yet: init_run makes it
    cfg = Cfg(LoggerConfig(wandb_mode="offline", project="graft-tests", group="sweep-7", tags=["unit", "zh"]),
              str(root))

    monkeypatch.delenv("WANDB_ERROR_REPORTING", raising=False)
    env_before = {k: os.environ.get(k) for k in tracking.OFFLINE_ENV}
    run = tracking.init_run(cfg, raw_config(), job_type="train")
    assert run is not None and tracking._run is run
    assert run.offline and run.settings.mode == "offline"
    # No network attempt (tests/test_offline.py traces it): no telemetry, system metrics, git or code capture.
    assert os.environ["WANDB_ERROR_REPORTING"] == "false"
    assert run.settings.x_disable_stats and run.settings.x_disable_meta and run.settings.disable_git
    assert (run.project, run.group, run.job_type, tuple(run.tags)) == ("graft-tests", "sweep-7", "train",
                                                                       ("unit", "zh"))
    expected_config = {"run_root": "runs/demo", "out_dir": "runs/demo/train", "seed": 3,
                       "train": {"lr": 0.001, "stages": ["warmup", "replay"]}}
    assert {k: run.config[k] for k in expected_config} == expected_config  # resolved, as config.yaml
    assert Path(run.dir).resolve().is_relative_to((root / "wandb").resolve())  # dir defaults to run_root

    tracking.log({"loss": 2.5, "loss/zh_news": 3.0}, step=3)
    tracking.log({"loss": 1.25}, step=4)
    tracking.summary({"final_loss": 1.25, "tokens_per_s": 100.0})
    assert run.summary["final_loss"] == 1.25
    tracking.finish()
    assert tracking._run is None
    assert {k: os.environ.get(k) for k in env_before} == env_before  # the offline environment lasts as long as the run
    tracking.finish()  # a second finish is a no-op

    (store,) = (root / "wandb").glob("offline-run-*/run-*.wandb")
    records = read_wandb_records(store)
    kinds = [r.WhichOneof("record_type") for r in records]
    assert "run" in kinds and kinds[-1] == "exit"
    (run_rec,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run_rec.project, run_rec.run_group, run_rec.job_type, list(run_rec.tags)) == (
        "graft-tests", "sweep-7", "train", ["unit", "zh"])
    stored_config = {u.key: json.loads(u.value_json) for u in run_rec.config.update}
    assert {k: stored_config[k] for k in expected_config} == expected_config

    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    assert [(h["_step"], h["loss"], h.get("loss/zh_news")) for h in history] == [(3, 2.5, 3.0), (4, 1.25, None)]
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update({u.key: json.loads(u.value_json) for u in r.summary.update if u.key})
    assert summary["final_loss"] == 1.25 and summary["tokens_per_s"] == 100.0
    assert not (tmp_path / "wandb_dir").exists() or not any((tmp_path / "wandb_dir").glob("**/*.wandb"))
