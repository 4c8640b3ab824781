"""Cache keys and launch commands, from composed configs (no stage runs): which change moves which stage's key."""

import sys

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from research.config import to_object
from research.errors import ConfigError, GraftError
from research.orchestrate.launch import command, last_error
from research.orchestrate.run_stages import plan, quote, stage_command
from tests.conftest import compose


def keys(*overrides, root="/runs/a"):
    raw = compose("pipeline", ["experiment=demo", f"run_root={root}", *overrides])
    return {name: p["key"] for name, p in plan(to_object(raw), raw).items()}


def changed(a: dict, b: dict) -> set[str]:
    return {name for name in a if a[name] != b[name]}


def test_init_sweep_reuses_tokenizer_and_data():
    assert changed(keys(), keys("init=mvn")) == {"init_model", "train", "evaluate"}


def test_tokenizer_change_reaches_everything_downstream_of_it():
    assert changed(keys(), keys("tokenizer.target_size=40000")) == {
        "expand_vocab", "init_model", "prepare_data", "train", "evaluate"}


def test_data_and_schedule_changes():
    assert changed(keys(), keys("buckets=five")) == {"prepare_data", "train", "evaluate"}
    assert changed(keys(), keys("schedule=colossal_3stage")) == {"train", "evaluate"}
    assert changed(keys(), keys("eval.num_shots=0")) == {"evaluate"}
    # The base model's shape is demo_inputs' config: everything is rebuilt.
    assert changed(keys(), keys("model.hidden_size=128")) == set(keys())


def test_fused_loss_and_world_size_are_training_choices_only():
    assert changed(keys(), keys("model.fused_ce=true")) == {"train", "evaluate"}
    assert changed(keys(), keys("pipeline.nproc=1")) == {"train", "evaluate"}  # global batch, data order
    assert changed(keys(), keys("pipeline.eval_nproc=2")) == set()  # scores do not depend on it
    assert changed(keys(), keys("logger=none", "pipeline.reuse=false")) == set()


def test_keys_do_not_depend_on_the_run_root():
    assert keys(root="/runs/a") == keys(root="/elsewhere/b")


def test_a_stage_left_out_is_read_from_its_path_and_hashed_by_it():
    a = keys("pipeline.stages=[init_model,train]", "paths.tokenizer=/tok/one", "paths.data=/data/x")
    b = keys("pipeline.stages=[init_model,train]", "paths.tokenizer=/tok/two", "paths.data=/data/x")
    assert a["expand_vocab"] is None and changed(a, b) == {"init_model", "train"}
    raw = compose("pipeline", ["experiment=demo", "pipeline.stages=[init_model,train]", "paths.data=/data/x"])
    assert plan(to_object(raw), raw)["prepare_data"]["dir"] == "/data/x"


def test_stage_commands_carry_the_overrides_and_the_cache_folders():
    raw = compose("pipeline", ["experiment=demo", "run_root=/runs/a", "pipeline.cache_dir=/c", "pipeline.nproc=2",
                               "init=mvn", "out_dir=/ignored"])
    cfg = to_object(raw)
    p = plan(cfg, raw)
    dirs = {name: q["dir"] for name, q in p.items()}
    user = ["experiment=demo", "init=mvn", "out_dir=/ignored", "pipeline.nproc=2"]
    train = stage_command("train", cfg, user, dirs)
    assert train[:7] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                         "research.train"]
    assert "init=mvn" in train and "out_dir=/ignored" not in train
    assert f"out_dir=/c/train/{p['train']['key']}" in train
    assert f"paths.model=/c/init_model/{p['init_model']['key']}" in train
    assert f"paths.data=/c/prepare_data/{p['prepare_data']['key']}" in train
    ev = stage_command("evaluate", cfg, user, dirs)
    assert ev[:3] == [sys.executable, "-m", "research.evaluate"]
    assert f"eval.model_path=/c/train/{p['train']['key']}/final" in ev
    assert command("expand_vocab", ["a=1"]) == [sys.executable, "-m", "research.expand_vocab", "a=1"]


@pytest.mark.parametrize("value", ["/plain/path-1.2", "/with space/x", "/a,b/[c]", "/it's/{x}=y", "/back\\slash", "/a\\'b", "/end\\"])
def test_quoted_values_parse_back_unchanged(value):
    parsed = OverridesParser.create().parse_overrides([f"out_dir={quote(value)}"])[0]
    assert parsed.value() == value


@pytest.mark.parametrize("stages,reason", [
    ("[train,expand_vocab]", "recipe's order"),
    ("[expand_vocab,expand_vocab]", "distinct"),
    ("[tokenize]", "unknown stage"),
    ("[]", "at least one"),
])
def test_bad_stage_lists_fail_naming_the_key(stages, reason):
    with pytest.raises(ConfigError, match=r"pipeline\.stages=.*" + reason):
        to_object(compose("pipeline", [f"pipeline.stages={stages}"]))


def test_bad_rerun_and_nproc_fail():
    with pytest.raises(GraftError, match=r"pipeline\.rerun='nope'"):
        to_object(compose("pipeline", ["pipeline.rerun=[nope]"]))
    with pytest.raises(GraftError, match=r"pipeline\.nproc=0"):
        to_object(compose("pipeline", ["pipeline.nproc=0"]))


def test_last_error_prefers_the_apps_one_line_error(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("progress\nerror: tokenizer.base_path='/x': not found\n[rank0] exit\n")
    assert last_error(log) == "tokenizer.base_path='/x': not found"
    log.write_text("Traceback (most recent call last):\n  File x\nRuntimeError: boom\nE1129 torchrun failed\n")
    assert last_error(log) == "RuntimeError: boom"
