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
    ("demo.pretrain_final_lr=1.5", "demo.pretrain_final_lr"),
    ("demo.pretrain_long_share=1.0", "demo.pretrain_long_share"),
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


def test_init_registry_is_conf_init():
    """Every conf/init/<name>.yaml is one strategy: `strategy: <name>`, a key of the registry, and back."""
    import yaml

    from research.init.strategies import STRATEGIES

    files = sorted((Path(CONF_DIR) / "init").glob("*.yaml"))
    assert {f.stem for f in files} == set(STRATEGIES)
    for f in files:
        assert yaml.safe_load(f.read_text())["strategy"] == f.stem, f


def _registries():
    from research.data.score import SCORERS
    from research.eval.datasets import DATASETS
    from research.eval.methods import METHODS
    from research.init.strategies import STRATEGIES
    from research.tokenizer.sources import SOURCES

    return [("init.strategy=bogus", "init.strategy", STRATEGIES),
            ("data.score.scorer=bogus", "data.score.scorer", SCORERS),
            ("eval.datasets.0.name=bogus", "eval.datasets[].name", DATASETS),
            ("eval.methods=[first_token,bogus]", "eval.methods", METHODS),
            ("tokenizer.sources.0.kind=bogus", "tokenizer.sources[].kind", SOURCES)]


@pytest.mark.parametrize("override,key,registry", _registries(), ids=lambda x: x if isinstance(x, str) else "names")
def test_unknown_registry_name_fails_at_compose_naming_key_and_known_names(override, key, registry):
    with pytest.raises(ConfigError) as e:
        to_object(compose("expand_vocab", [override]))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{key}='bogus': ")
    assert msg.endswith(f"known: {', '.join(registry)}"), msg


def test_composing_imports_no_heavy_library():
    """The schemas validate against the registries themselves, so the registry modules stay light."""
    import subprocess
    import sys

    code = ("import sys; from tests.conftest import compose; from research.config import to_object; "
            "to_object(compose('pipeline', ['experiment=demo'])); "
            "print(sorted(m for m in ('torch', 'transformers', 'sentencepiece', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


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
