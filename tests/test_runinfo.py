"""research.runinfo: versions, git commit, hardware, and the config.yaml / summary.json every stage writes."""

import datetime
import importlib.metadata
import json
import os
import platform
import re

import yaml
from omegaconf import OmegaConf

from research import runinfo


def test_versions_reports_installed_packages_and_none_for_absent_ones():
    v = runinfo.versions(extra=("graft-no-such-package-xyz",))
    assert v["python"] == platform.python_version()
    assert list(v) == ["python", *runinfo.PACKAGES, "graft-no-such-package-xyz"]
    assert v["graft-no-such-package-xyz"] is None
    assert v["omegaconf"] == importlib.metadata.version("omegaconf")
    assert v["numpy"] == importlib.metadata.version("numpy")


def test_git_commit_is_a_full_hash_or_none():
    commit = runinfo.git_commit()
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}", commit), commit


def test_git_commit_is_none_without_git(monkeypatch):
    monkeypatch.setenv("PATH", "")  # `git` cannot be found: an OSError, reported as no commit
    assert runinfo.git_commit() is None


def test_hardware_names_platform_and_cpus():
    hw = runinfo.hardware()
    assert hw["platform"] == platform.platform() and hw["cpus"] == os.cpu_count()
    assert set(hw) <= {"platform", "cpus", "gpu", "gpus"}
    assert ("gpu" in hw) == ("gpus" in hw)


def test_run_info_time_is_utc_to_the_second():
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    info = runinfo.run_info()
    after = datetime.datetime.now(datetime.timezone.utc)
    assert set(info) == {"time", "git_commit", "versions", "hardware"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", info["time"]), info["time"]
    assert before <= datetime.datetime.fromisoformat(info["time"]) <= after


def test_write_run_files_resolves_config_and_appends_run_info(tmp_path):
    raw = OmegaConf.create({"run_root": "runs/a", "out_dir": "${run_root}/train", "train": {"lr": 3e-4,
                                                                                           "tags": ["x", "y"]}})
    summary = {"steps": 12, "final_loss": 2.5, "note": "中文 ünïcode", "nested": {"b": 1, "a": 2}}
    before = json.dumps(summary)
    runinfo.write_run_files(tmp_path, raw, summary)
    assert json.dumps(summary) == before  # the caller's dict is not changed

    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text(encoding="utf-8"))
    assert cfg == {"run_root": "runs/a", "out_dir": "runs/a/train", "train": {"lr": 3e-4, "tags": ["x", "y"]}}

    text = (tmp_path / "summary.json").read_text(encoding="utf-8")
    assert "中文 ünïcode" in text and text.endswith("}\n")
    written = json.loads(text)
    assert list(written) == ["steps", "final_loss", "note", "nested", "run"]  # key order kept, run info last
    assert list(written["nested"]) == ["b", "a"]
    assert {k: written[k] for k in summary} == summary
    assert set(written["run"]) == {"time", "git_commit", "versions", "hardware"}
    assert written["run"]["versions"]["python"] == platform.python_version()


def test_write_json_is_indented_utf8_with_a_final_newline(tmp_path):
    path = tmp_path / "x.json"
    obj = {"z": [1, 2], "a": "é"}
    runinfo.write_json(path, obj)
    assert path.read_text(encoding="utf-8") == '{\n  "z": [\n    1,\n    2\n  ],\n  "a": "é"\n}\n'
    assert json.loads(path.read_text(encoding="utf-8")) == obj
