"""research.config.plugin and research.train.plugins: every plugin and schedule composes, an option a plugin
does not take fails at compose time, the registry is the one list, the checks made before any process group."""


import dataclasses
import math
import os

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from train_helpers import ROOT

from research.config import to_object
from research.config.plugin import PLUGINS
from research.errors import ConfigError, GraftError

CONF = str(ROOT / "conf")


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
