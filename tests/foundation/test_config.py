"""Every YAML file of every config group composes and validates; bad values fail naming key and value."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import OmegaConfBaseException

from research.cli import CONF_DIR
from research.config import GROUPS, to_object
from research.errors import ConfigError, GraftError
from tests.conftest import compose

NEEDS = {("model", "llama2_7b"): ["model.path=/models/llama-2-7b"],
         ("experiment", "paper_7b"): ["model.path=/models/llama-2-7b"]}


def group_files():
    for group in (*GROUPS, "experiment"):
        for f in sorted((Path(CONF_DIR) / group).glob("*.yaml")):
            yield group, f.stem


@pytest.mark.parametrize("group,choice", list(group_files()))
def test_every_group_file_composes_and_validates(group, choice):
    extra = NEEDS.get((group, choice), [])
    cfg = to_object(compose("expand_vocab", [f"{group}={choice}", *extra]))
    if group != "experiment":
        assert getattr(cfg, group) is not None


@pytest.mark.parametrize("app", sorted(p.stem for p in Path(CONF_DIR).glob("*.yaml") if p.stem != "base"))
def test_every_app_config_composes(app):
    cfg = to_object(compose(app, []))
    assert cfg.out_dir


def test_every_group_has_files():
    for group in GROUPS:
        assert list((Path(CONF_DIR) / group).glob("*.yaml")), group


@pytest.mark.parametrize("override,key", [
    ("tokenizer.target_size=-5", "tokenizer.target_size"),
    ("tokenizer.pad_to_multiple_of=-64", "tokenizer.pad_to_multiple_of"),
    ("init.strategy=bogus", "init.strategy"),
    ("tokenizer.unreachable=maybe", "tokenizer.unreachable"),
    ("model.hidden_size=65", "model.hidden_size"),
    ("model.dtype=float8", "model.dtype"),
    ("buckets.num_bins=0", "buckets.num_bins"),
    ("logger.wandb_mode=sometimes", "logger.wandb_mode"),
])
def test_bad_values_name_key_and_value(override, key):
    with pytest.raises(ConfigError) as e:
        to_object(compose("expand_vocab", [override]))
    assert str(e.value).startswith(key)
    assert override.split("=", 1)[1] in str(e.value)


def test_wrong_type_and_unknown_key_fail_at_compose():
    with pytest.raises((ConfigCompositionException, OmegaConfBaseException)) as e:
        compose("expand_vocab", ["tokenizer.target_size=lots"])
    assert "target_size" in str(e.value) or "target_size" in str(e.value.__cause__)
    with pytest.raises((ConfigCompositionException, OmegaConfBaseException)) as e:
        compose("expand_vocab", ["tokenizer.no_such_key=1"])
    assert "no_such_key" in str(e.value)


def test_unknown_choice_lists_known_ones():
    with pytest.raises(Exception) as e:
        compose("expand_vocab", ["init=bogus"])
    assert "subword_mean" in str(e.value)


def test_init_registry_matches_schema():
    from research.config.init import STRATEGY_NAMES
    from research.init.strategies import STRATEGIES

    assert set(STRATEGIES) == set(STRATEGY_NAMES)
    for name in STRATEGY_NAMES:
        assert (Path(CONF_DIR) / "init" / f"{name}.yaml").is_file()


def test_pad_to_multiple_rounds_up():
    cfg = to_object(compose("expand_vocab", ["tokenizer.target_size=69104", "tokenizer.pad_to_multiple_of=128"]))
    assert cfg.tokenizer.final_size == 69120 and cfg.tokenizer.final_size % 128 == 0
    cfg = to_object(compose("expand_vocab", ["tokenizer.pad_to_multiple_of=64"]))
    assert cfg.tokenizer.final_size == 69120  # 69,104 is not a multiple of 64


def test_interpolations_resolve_under_run_root(tmp_path):
    cfg = to_object(compose("init_model", [f"run_root={tmp_path}"]))
    assert cfg.out_dir == f"{tmp_path}/model" and cfg.paths.tokenizer == f"{tmp_path}/tokenizer"


def test_graft_error_is_one_line():
    e = ConfigError("tokenizer.target_size", -1, "must be positive")
    assert isinstance(e, GraftError) and "\n" not in str(e)
