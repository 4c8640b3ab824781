"""Mistral and Qwen2 trained through the CLI on 2 gloo processes (Llama: test_distributed.py, test_parallel_mesh.py),
with grouped-query attention, the fused loss and the per-document mask (Mistral's sliding window of 8 < the packs'
32 folded in), across the embeddings_only -> full stage change:

- mistral under ddp and qwen2 (tied embeddings) under zero2: SIGKILLed after step 5, resumed from step 4, the same
  losses as the uninterrupted run at every step and the same final weights;
- mistral under hybrid tp=2, qwen2 under hybrid pp=2 (its tied matrix on the first and last stage) and tp=2 (through
  research/train/shard_policies.py), each with one data-parallel rank accumulating 2 micro-batches: the same losses
  as the 2-process run;
- a family colossalai's shardformer has no policy for (Phi3) refused under plugin=hybrid, and a family Graft does
  not train refused under any plugin, before the process group starts."""

import json

import pytest
import torch
from train_helpers import DDP_ARGS, MAX_LEN, VOCAB, launch, metrics, ok

from tests.conftest import assert_one_line_error

FAMILY_MODELS = {
    "mistral": {"sliding_window": 8},
    "qwen2": {"tie_word_embeddings": True, "use_sliding_window": False, "sliding_window": None},
    "phi3": {},
}
HIDDEN = 32
ARGS = [*DDP_ARGS, "model.fused_ce=true", "model.fused_ce_impl=chunked"]
"""The 8-step, 2-stage run of DDP_ARGS with the fused loss (train.doc_mask is on by default)."""
TP2 = ["plugin=hybrid", "plugin.tp_size=2", "model.fused_ce=false"]  # tensor parallelism excludes the fused loss
HYBRID = {"mistral": [TP2],
          # pp=2 with the fused loss on the last stage; tp=2 through research/train/shard_policies.py (4 steps)
          "qwen2": [["plugin=hybrid", "plugin.tp_size=1", "plugin.pp_size=2"], [*TP2, "train.max_steps=4"]]}
"""The hybrid runs of each family, each with one data-parallel rank (train.grad_accum=2)."""


def family_model(path, family: str):
    """A tiny random model of `family` (the sizes of train_helpers.tiny_model, 2 key/value heads for 4)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.for_model(family, vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=64,
                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                  max_position_embeddings=128, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                  **FAMILY_MODELS[family])
    AutoModelForCausalLM.from_config(config).save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture(scope="module")
def roots(run_root, tmp_path_factory) -> dict:
    """family -> a run root holding model/ (that family) and data/ (run_root's buckets)."""
    out = {}
    for family in FAMILY_MODELS:
        root = tmp_path_factory.mktemp(f"{family}_root")
        family_model(root / "model", family)
        (root / "data").symlink_to(run_root / "data")
        out[family] = root
    return out


def _same_weights(a, b) -> bool:
    from transformers import AutoModelForCausalLM

    ma, mb = (AutoModelForCausalLM.from_pretrained(p).state_dict() for p in (a, b))
    return ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)


@pytest.mark.slow
@pytest.mark.parametrize("family,plugin", [("mistral", "ddp"), ("qwen2", "zero2")])
def test_kill_resume_and_hybrid_match_uninterrupted(family, plugin, roots, tmp_path):
    full, cut, hybrid = tmp_path / "full", tmp_path / "cut", tmp_path / "hybrid"
    args = [f"run_root={roots[family]}", *ARGS]
    ok(launch([*args, f"plugin={plugin}", f"out_dir={full}"], nproc=2))
    killed = launch([*args, f"plugin={plugin}", f"out_dir={cut}"], nproc=2, env={"GRAFT_FAULT": "kill_after_step:5"})
    assert killed.returncode != 0 and (cut / "checkpoints" / "step_00000004").is_dir()
    ok(launch([*args, f"plugin={plugin}", f"out_dir={cut}"], nproc=2))  # resumes from step 4
    a, b = metrics(full), metrics(cut)
    assert [r["step"] for r in b] == list(range(1, 9)) and b[-1]["stage"] == "full"
    for ra, rb in zip(a, b, strict=True):
        assert (ra["loss"], ra["stage"], ra["bucket"], ra["trainable_params"], ra["tokens_seen"]) == \
               (rb["loss"], rb["stage"], rb["bucket"], rb["trainable_params"], rb["tokens_seen"])
        assert rb["grad_norm"] == pytest.approx(ra["grad_norm"], rel=1e-6)
    assert _same_weights(full / "final", cut / "final")
    # embeddings_only trains the input and output matrices: one parameter when tied (qwen2), two otherwise.
    assert a[0]["trainable_params"] == (1 if family == "qwen2" else 2) * VOCAB * HIDDEN
    summary = json.loads((full / "summary.json").read_text())
    assert summary["fused_ce"] is True and summary["doc_mask"] is True
    n = summary["num_params"]
    embedding = 0 if family == "qwen2" else VOCAB * HIDDEN  # tied: the one matrix is also the lm_head matmul
    assert summary["flops_per_token"] == 6 * (n - embedding) + 12 * 2 * HIDDEN * MAX_LEN
    # One data-parallel rank accumulating the 2 ranks' micro-batches: the same steps (tp=2: with the plain loss).
    for i, extra in enumerate(HYBRID[family]):
        out = hybrid / str(i)
        ok(launch([*args, *extra, "train.grad_accum=2", f"out_dir={out}"], nproc=2))
        h = metrics(out)
        assert len(h) == (4 if "train.max_steps=4" in extra else 8)
        assert json.loads((out / "summary.json").read_text())["dp_size"] == 1
        for ra, rh in zip(a, h, strict=False):
            assert rh["loss"] == pytest.approx(ra["loss"], rel=1e-5), extra
            assert rh["trainable_params"] == ra["trainable_params"], extra  # whole-model counts, shards or not
        _check_final(out / "final", family)


def _check_final(final, family: str) -> None:
    """The final folder reloads as its family; tied, the saved input and output matrices are the same values."""
    import safetensors.torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(final)
    assert model.config.model_type == family
    tied = family == "qwen2"
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    saved = {}
    for f in final.glob("*.safetensors"):
        saved.update(safetensors.torch.load_file(f))
    if tied and "lm_head.weight" in saved:  # a pipeline's last stage saves its synchronised copy too
        assert torch.equal(saved["lm_head.weight"], saved["model.embed_tokens.weight"])


def test_architecture_refusals_before_the_process_group(roots, tmp_path):
    phi3 = [f"run_root={roots['phi3']}", f"out_dir={tmp_path / 'out'}", "train.max_steps=1"]
    where = str(roots["phi3"] / "model" / "config.json")
    assert_one_line_error(launch([*phi3, "plugin=hybrid"]), "plugin=hybrid", "Phi3ForCausalLM", where)
    assert_one_line_error(launch([*phi3, "plugin=ddp"]), where, "Phi3ForCausalLM", "known: llama, mistral, qwen2")
    assert not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.parametrize("family", ["mistral", "qwen2"])
def test_sequence_parallel_is_refused_outside_llama(family, roots):
    from transformers import AutoConfig

    from research.config.plugin import HybridPluginConfig
    from research.errors import GraftError
    from research.train.plugins import check_architecture

    config = AutoConfig.from_pretrained(roots[family] / "model")
    p = HybridPluginConfig(tp_size=1, sp_size=2, sp_mode="all_to_all")
    with pytest.raises(GraftError, match=r"^plugin.sp_size=2: sequence parallelism is supported for the llama"):
        check_architecture(p, config, "config.json")
    check_architecture(HybridPluginConfig(tp_size=2), config, "config.json")
