"""The new_rows_only freeze policy on 2 gloo processes (ddp, zero2): base rows bit-identical in the saved
safetensors, new rows trained, no optimizer state for the base rows, SIGKILL + resume inside the stage gives the
same losses, and a later full stage trains everything (schedule=new_rows_then_full). Bad input is one line."""

import glob
import json

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import launch, metrics, ok, tiny_model

from tests.conftest import assert_one_line_error

pytestmark = pytest.mark.slow
BASE = 200
"""The expanded model's base size: ids 200-255 of the tiny vocabulary of 256 are its new rows."""
STAGES = ["schedule=new_rows_then_full", "schedule.stages.0.steps=4", "schedule.stages.1.steps=2",
          "train.checkpoint_every=2"]


@pytest.fixture(scope="module")
def expanded_root(run_root, tmp_path_factory):
    """run_root's data with a model folder as research.init_model leaves it: summary.json names its base size."""
    root = tmp_path_factory.mktemp("expanded")
    tiny_model(root / "model")
    (root / "model" / "summary.json").write_text(json.dumps({"app": "init_model", "old_size": BASE, "new_size": 256}))
    (root / "data").symlink_to(run_root / "data")
    return root


def weights(folder) -> dict:
    out = {}
    for f in glob.glob(f"{folder}/*.safetensors"):
        out.update(load_file(f))
    return out


def optimizer_state_shapes(ckpt) -> set:
    """Shapes of the tensors each optimizer state entry holds (exp_avg), over the checkpoint's shards."""
    shapes = set()
    for f in glob.glob(f"{ckpt}/optimizer/pytorch_optim-*.bin"):
        for state in torch.load(f, weights_only=True, map_location="cpu").values():
            if isinstance(state, dict) and "exp_avg" in state:
                shapes.add(tuple(state["exp_avg"].shape))
    return shapes


@pytest.mark.parametrize("plugin", ["ddp", "zero2"])
def test_new_rows_only_keeps_base_rows_and_resumes_exactly(plugin, expanded_root, tmp_path):
    init = weights(expanded_root / "model")
    steps = 6 if plugin == "ddp" else 4  # ddp runs on into the full stage; zero2 ends with the new-rows stage
    args = [f"run_root={expanded_root}", f"plugin={plugin}", *STAGES, f"train.max_steps={steps}"]
    ok(launch([*args, f"out_dir={tmp_path / 'a'}"], nproc=2))
    killed = launch([*args, f"out_dir={tmp_path / 'b'}"], nproc=2, env={"GRAFT_FAULT": "kill_after_step:3"})
    assert killed.returncode != 0
    ok(launch([*args, f"out_dir={tmp_path / 'b'}"], nproc=2))  # resumes from step 2, inside the new-rows stage
    a, b = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert [r["step"] for r in b] == list(range(1, steps + 1))
    assert [(r["loss"], r["grad_norm"]) for r in a] == [(r["loss"], r["grad_norm"]) for r in b]
    assert [r["trainable_params"] for r in a[:4]] == [2 * (256 - BASE) * 32] * 4

    # After the new-rows stage (checkpoint 4; final/ too when the run ends there): base rows bit-identical, new ones
    # trained, every other parameter untouched.
    after = weights(tmp_path / "a" / "checkpoints" / "step_00000004" / "model")
    for name in ("model.embed_tokens", "lm_head"):
        start = init[f"{name}.weight"]
        assert torch.equal(after[f"{name}.rows.base_rows"], start[:BASE])
        assert not torch.equal(after[f"{name}.rows.new_rows"], start[BASE:])
    assert all(torch.equal(after[k], v) for k, v in init.items() if "embed_tokens" not in k and "lm_head" not in k)
    # optimizer state only for the new rows (56 x 32 each): none for the base rows or the frozen layers
    assert optimizer_state_shapes(tmp_path / "a" / "checkpoints" / "step_00000004") == {(256 - BASE, 32)}

    final = weights(tmp_path / "a" / "final")  # merged back: the family's own parameter names
    assert final.keys() == init.keys()
    resumed = weights(tmp_path / "b" / "final")
    assert all(torch.equal(final[k], resumed[k]) for k in final)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        if plugin == "zero2":
            assert torch.equal(final[name][:BASE], init[name][:BASE]) and not torch.equal(final[name], init[name])
        else:  # the full stage that follows trains the base rows too
            assert a[-1]["stage"] == "full" and a[-1]["trainable_params"] > a[0]["trainable_params"]
            assert not torch.equal(final[name][:BASE], init[name][:BASE])
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "a" / "final", use_safetensors=True)


def test_new_rows_only_needs_an_expanded_model_and_a_tested_plugin(run_root, expanded_root, tmp_path):
    proc = launch([f"run_root={run_root}", f"out_dir={tmp_path / 'x'}", *STAGES])  # the CLI, one process
    assert_one_line_error(proc, "schedule.stages.0.freeze=new_rows_only", "not expanded")
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
    # the same check, before any process group, for the plugins that shard or wrap the embeddings themselves
    from research.config import to_object
    from research.errors import GraftError
    from research.train.trainer import _new_rows
    from tests.conftest import compose

    for plugin in ("hybrid", "gemini"):
        cfg = to_object(compose("train", [f"plugin={plugin}", "schedule=new_rows_then_full"]))
        with pytest.raises(GraftError, match=f"schedule.stages.0.freeze=new_rows_only: runs under .*plugin={plugin}"):
            _new_rows(list(cfg.schedule.stages), expanded_root / "model", cfg.plugin)
    cfg = to_object(compose("train", ["plugin=zero2", "schedule=new_rows_then_full"]))
    assert _new_rows(list(cfg.schedule.stages), expanded_root / "model", cfg.plugin) == BASE
