"""In-process checks of the pieces: mask, loss, schedule, stream, freeze + optimizer state, configs."""

import dataclasses
import math
import os

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from train_helpers import ROOT, VOCAB, tiny_model

from research import contracts
from research.config import to_object
from research.config.plugin import PLUGINS
from research.config.schedule import StageConfig, parse_buckets
from research.errors import ConfigError, GraftError
from research.train import loader as D
from research.train.stage_plan import Schedule, Stage
from research.train.token_loss import forward_loss, token_losses
from research.train.trainer import apply_freeze

CONF = str(ROOT / "conf")


def _model(tmp_path):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(tiny_model(tmp_path / "m"), attn_implementation="eager")


def test_doc_mask_packed_equals_separate(tmp_path):
    model = _model(tmp_path).eval()
    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(1, VOCAB, (7,), generator=g).tolist(), torch.randint(1, VOCAB, (5,), generator=g).tolist()
    L = 16
    row = {"input_ids": a + b + [0] * (L - 12), "labels": a + b + [-100] * (L - 12), "doc_lens": [7, 5],
           "doc_categories": ["zh", "en"], "bucket": 0}
    batch = D.Collator(["en", "zh"], doc_mask=True, mask_dtype=torch.float32)([row])
    with torch.no_grad():
        _, packed, count = forward_loss(model, batch, fused=False)
        separate = []
        for doc in (a, b):
            ids = torch.tensor([doc])
            separate.append(token_losses(model(input_ids=ids).logits, ids)[0, :-1])
    expected = torch.cat([separate[0], separate[1]])
    got = torch.cat([packed[0, :6], packed[0, 7:11]])
    assert count == 10
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert packed[0, 6] == 0  # the last token of doc a does not predict doc b's first token
    # Without the mask, doc b attends to doc a and its losses change.
    plain = D.Collator(["en", "zh"], doc_mask=False, mask_dtype=torch.float32)([row])
    with torch.no_grad():
        _, unmasked, _ = forward_loss(model, plain, fused=False)
    assert not torch.allclose(unmasked[0, 7:11], separate[1])


def test_all_ignored_labels_give_zero_loss_and_grads(tmp_path):
    model = _model(tmp_path)
    row = {"input_ids": list(range(1, 17)), "labels": [-100] * 16, "doc_lens": [16], "doc_categories": ["zh"],
           "bucket": 0}
    batch = D.Collator(["zh"], doc_mask=True, mask_dtype=torch.float32)([row])
    loss, _, count = forward_loss(model, batch, fused=False)
    loss.backward()
    assert count == 0 and loss.item() == 0.0 and not torch.isnan(loss)
    assert all(p.grad is not None and torch.count_nonzero(p.grad) == 0 for p in model.parameters())


def test_fused_loss_matches_plain(tmp_path):
    from research.train.token_loss import enable_fused_ce

    model = _model(tmp_path)
    row = {"input_ids": list(range(1, 33)), "labels": list(range(1, 29)) + [-100] * 4, "doc_lens": [20, 8],
           "doc_categories": ["zh", "zh"], "bucket": 0}
    batch = D.Collator(["zh"], doc_mask=True, mask_dtype=torch.float32)([row])
    plain, _, _ = forward_loss(model, batch, fused=False)
    assert enable_fused_ce(model, "chunked") is True
    fused, per_token, _ = forward_loss(model, batch, fused=True)
    assert per_token is None
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)


def test_freeze_keeps_optimizer_state_across_stages(tmp_path):
    model = _model(tmp_path)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.randint(1, VOCAB, (2, 16), generator=torch.Generator().manual_seed(0))

    def step():
        token_losses(model(input_ids=ids).logits, ids).mean().backward()
        opt.step()
        opt.zero_grad()

    n = apply_freeze(model, "embeddings_only")
    assert n == 2 * VOCAB * 32
    frozen = model.model.layers[0].self_attn.q_proj.weight
    before = frozen.detach().clone()
    step(), step()
    head = model.lm_head.weight
    assert frozen not in opt.state and torch.equal(frozen, before)
    carried = opt.state[head]["exp_avg"].clone()
    assert float(opt.state[head]["step"]) == 2
    apply_freeze(model, "full")
    assert torch.equal(opt.state[head]["exp_avg"], carried)  # a stage change keeps the state
    step()
    assert float(opt.state[head]["step"]) == 3 and float(opt.state[frozen]["step"]) == 1


def _schedule():
    a = StageConfig(name="a", steps=10, warmup=0.2, decay="cosine", min_lr_ratio=0.1, lr_scale=1.0)
    b = StageConfig(name="b", steps=5, decay="constant", lr_scale=0.5)
    return Schedule([Stage(0, a, 0, 10, 0), Stage(1, b, 10, 5, 0)], peak_lr=1.0)


def test_schedule_lookup_and_lr():
    s = _schedule()
    assert s.total_steps == 15
    assert s.lookup(0)[0].config.name == "a" and s.lookup(9)[0].config.name == "a"
    stage, frac = s.lookup(12)
    assert stage.config.name == "b" and frac == pytest.approx(0.4)
    assert s.lr(0) == pytest.approx(0.5) and s.lr(1) == pytest.approx(1.0)  # warm-up over 2 steps
    assert s.lr(2) == pytest.approx(1.0) and s.lr(9) == pytest.approx(0.1)  # cosine to min_lr_ratio
    assert all(s.lr(i) >= s.lr(i + 1) for i in range(1, 9))
    assert s.lr(10) == s.lr(14) == pytest.approx(0.5)


def test_parse_buckets():
    assert parse_buckets("all", 4) == [0, 1, 2, 3]
    assert parse_buckets("0-2,5", 6) == [0, 1, 2, 5]
    assert parse_buckets("0%-10%", 4) + parse_buckets("10%-100%", 4) == [0, 1, 2, 3]
    assert parse_buckets("0%-70%", 10) == list(range(7)) and parse_buckets("70%-90%", 10) == [7, 8]
    with pytest.raises(ConfigError, match="does not exist"):
        parse_buckets("3-4", 4)


def test_stage_stream_order_mix_and_rank_shares(run_root):
    m = contracts.read_manifest(run_root / "data")
    buckets = contracts.load_buckets(m)
    st = D.StageStream(StageConfig(name="s", buckets="1-2"), 0, buckets, m.categories, seed=5)
    seq = [st.locate(p) for p in range(st.length)]
    assert [b for b, _ in seq] == [1] * 8 + [2] * 8  # buckets in order, each whole
    assert sorted(r for b, r in seq if b == 1) == list(range(8))
    assert seq == [D.StageStream(StageConfig(name="s", buckets="1-2"), 0, buckets, m.categories, 5).locate(p)
                   for p in range(st.length)]
    assert [r for _, r in seq[:8]] != list(range(8))  # shuffled
    assert [st.locate(p) for p in range(16, 32)] != seq  # the next epoch reshuffles
    shares = [D.RankSlice(st, 0, 4, micro_batch=1, grad_accum=2, dp_size=2, dp_rank=r).items for r in (0, 1)]
    assert sorted(shares[0] + shares[1]) == list(range(16)) and not set(shares[0]) & set(shares[1])
    cats = D._majority_categories(buckets[0], m.categories)
    mixed = D.StageStream(StageConfig(name="m", buckets="0", mix={"en": 0.0, "zh": 2.0}), 0, buckets, m.categories, 5)
    zh = int((cats == m.categories.index("zh")).sum())
    assert mixed.length == 2 * zh
    with pytest.raises(GraftError, match="absent from the data"):
        D.StageStream(StageConfig(name="x", mix={"fr": 1.0}), 0, buckets, m.categories, 5)


def test_every_plugin_and_schedule_composes_and_bad_options_fail():
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        for name in sorted(os.listdir(ROOT / "conf" / "plugin")):
            cfg = to_object(compose("train", overrides=[f"plugin={name[:-5]}"]))
            assert cfg.plugin.name == name[:-5] and type(cfg.plugin) is PLUGINS[name[:-5]]
        with pytest.raises(ConfigError, match="plugin.stage=3"):
            to_object(compose("train", overrides=["plugin=zero2", "plugin.stage=3"]))
        with pytest.raises(ConfigError, match="plugin.name='hybrid'.*'ddp' plugin's config"):
            to_object(compose("train", overrides=["plugin=ddp", "plugin.name=hybrid"]))
        for name in ("colossal_3stage", "embed_warmup_then_full"):
            cfg = to_object(compose("train", overrides=[f"schedule={name}"]))
            assert cfg.schedule.name == name and cfg.schedule.stages
        with pytest.raises(ConfigError, match="freeze"):
            to_object(compose("train", overrides=["schedule.stages.0.freeze=some"]))
        with pytest.raises(ConfigError, match="train.grad_accum"):
            to_object(compose("train", overrides=["train.grad_accum=0"]))


def test_plugin_registry_is_the_one_list_of_plugins():
    from research.config.plugin import PluginConfig
    from research.train.plugins import build_plugin

    assert {f.stem for f in (ROOT / "conf" / "plugin").glob("*.yaml")} == set(PLUGINS)
    no_builder = build_plugin.dispatch(PluginConfig)
    for name, cls in PLUGINS.items():
        assert cls().name == name and build_plugin.dispatch(cls) is not no_builder, name


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_option_a_plugin_does_not_take_fails_at_compose(name):
    options = {n: {f.name for f in dataclasses.fields(cls)} for n, cls in PLUGINS.items()}
    foreign = sorted(set().union(*options.values()) - options[name])
    assert foreign
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        with pytest.raises(ConfigCompositionException) as e:
            compose("train", overrides=[f"plugin={name}", f"plugin.{foreign[0]}=1"])
        assert f"'plugin.{foreign[0]}'" in str(e.value).splitlines()[0], str(e.value)
        node = compose("train", overrides=[f"plugin={name}"]).plugin
    for key in foreign:  # the composed node is typed by the choice's dataclass: no key of another plugin fits
        with pytest.raises(OmegaConfBaseException, match=key):
            OmegaConf.update(node, key, 1)


def test_paper_7b_composes():
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = to_object(compose("train", overrides=["experiment=paper_7b", "model.path=/models/Llama-2-7b-hf"]))
    t = cfg.train
    assert (cfg.model.name, cfg.model.hidden_size, cfg.tokenizer.target_size) == ("llama2_7b", 4096, 69104)
    assert (cfg.plugin.name, cfg.plugin.stage, cfg.data.max_length, t.precision) == ("zero2", 2, 4096, "bf16")
    assert (t.lr, list(t.betas), t.weight_decay, t.grad_clip) == (3e-4, [0.9, 0.95], 0.1, 1.0)
    assert all(s.warmup == 0.025 or s.name == "knowledge_replay" for s in cfg.schedule.stages)
    assert all(math.isclose(s.min_lr_ratio, 0.1) for s in cfg.schedule.stages)


def test_plugin_checks_gemini_and_vocabulary_multiple():
    from research.config.plugin import GeminiPluginConfig
    from research.config.plugin import HybridPluginConfig as Hybrid
    from research.train.plugins import check_plugin

    if torch.cuda.is_available():
        pytest.skip("GPU present")
    with pytest.raises(GraftError, match="Gemini needs a CUDA GPU"):
        check_plugin(GeminiPluginConfig(), 2, 256, False)
    with pytest.raises(GraftError, match="multiple of 128 .*make_vocab_size_divisible_by=64 x tp_size=2"):
        check_plugin(Hybrid(tp_size=2, make_vocab_size_divisible_by=64), 2, 200, False)
    with pytest.raises(GraftError, match="multiple of 64"):  # padding breaks checkpoints without tp too
        check_plugin(Hybrid(tp_size=1, pp_size=2, make_vocab_size_divisible_by=64), 2, 200, False)
    with pytest.raises(GraftError, match="multiple of 2 "):  # no multiple avoids padding: odd vocabulary, tp=2
        check_plugin(Hybrid(tp_size=2), 2, 201, False)
    check_plugin(Hybrid(tp_size=2), 2, 200, False)  # unset: 4 x 2 = 8 divides 200
    from research.train.plugins import vocab_multiple

    assert [vocab_multiple(Hybrid(tp_size=tp), v) for tp, v in
            ((1, 69104), (2, 69104), (1, 69120), (2, 69120), (1, 201))] == [16, 8, 64, 64, 1]


def test_pipeline_config_errors():
    from research.config.plugin import DdpPluginConfig
    from research.config.plugin import HybridPluginConfig as Hybrid
    from research.config.train import TrainConfig
    from research.train.plugins import check_pipeline, pipeline_microbatches

    pp = Hybrid(tp_size=1, pp_size=2)
    t = TrainConfig(micro_batch_size=2, grad_accum=4)
    assert pipeline_microbatches(pp, t) == (2, 4)
    assert pipeline_microbatches(Hybrid(pp_size=2, num_microbatches=2), t) == (4, 2)
    check_pipeline(pp, t, num_layers=2)
    with pytest.raises(GraftError, match="at least 2.*train.grad_accum to 2"):
        check_pipeline(pp, TrainConfig(micro_batch_size=2, grad_accum=1), 2)
    with pytest.raises(GraftError, match="exceeds the model's 2 decoder layers"):
        check_pipeline(Hybrid(pp_size=4), TrainConfig(grad_accum=4), 2)
    with pytest.raises(GraftError, match="plugin.microbatch_size=3 must divide the 8 packs"):
        check_pipeline(Hybrid(pp_size=2, microbatch_size=3), t, 2)
    with pytest.raises(GraftError, match="plugin.num_microbatches=3 must divide"):
        check_pipeline(Hybrid(pp_size=2, num_microbatches=3), t, 2)
    with pytest.raises(GraftError, match="multiple of plugin.pp_size=2"):
        check_pipeline(Hybrid(pp_size=2, pp_style="interleaved", num_model_chunks=2),
                       TrainConfig(micro_batch_size=1, grad_accum=3), 4)
    with pytest.raises(ConfigError, match="plugin.pp_style"):
        Hybrid(pp_style="gpipe")
    with pytest.raises(ConfigError, match="plugin.num_model_chunks"):
        Hybrid(pp_style="interleaved")
    with pytest.raises(ConfigError, match="plugin.num_model_chunks"):
        Hybrid(num_model_chunks=2)
    check_pipeline(DdpPluginConfig(), TrainConfig(grad_accum=1), 1)  # not pipelined: nothing to check


def test_flash_attention_refusals():
    from research.config.plugin import HybridPluginConfig
    from research.config.train import TrainConfig
    from research.train.plugins import check_attention

    check_attention(HybridPluginConfig(), TrainConfig())  # off: nothing to check
    flash = HybridPluginConfig(enable_flash_attention=True)
    with pytest.raises(GraftError, match="cannot apply train.doc_mask=true"):
        check_attention(flash, TrainConfig(doc_mask=True))
    if torch.cuda.is_available():
        check_attention(flash, TrainConfig(doc_mask=False))
    else:
        with pytest.raises(GraftError, match="enable_flash_attention=true .plugin=hybrid. needs a CUDA GPU"):
            check_attention(flash, TrainConfig(doc_mask=False))
