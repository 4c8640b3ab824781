"""A key added with `+` that no schema field has (`+data.maxlength=5`) fails when the config is validated, naming
the key and the closest known one; the `+` uses that add to free-form nodes keep working."""

import pytest

from research.config import GROUPS, to_object, unknown_keys
from research.errors import GraftError
from tests.conftest import assert_one_line_error, compose, run_app


@pytest.mark.parametrize("override,key,hint", [
    ("+data.maxlength=5", "data.maxlength", "data.max_length"),
    ("++data.maxlength=5", "data.maxlength", "data.max_length"),
    ("+data.clean.min_char=3", "data.clean.min_char", "data.clean.min_chars"),
    ("+data.inputs.0.weigth=2", "data.inputs.0.weigth", "data.inputs.0.weight"),
    ("+tokenizer.sources.0.vocabsize=10", "tokenizer.sources.0.vocabsize", "tokenizer.sources.0.vocab_size"),
    ("+tokenizer.target=5", "tokenizer.target", "tokenizer.target_size"),
    ("+plugin.bucket_cap=5", "plugin.bucket_cap", "plugin.bucket_cap_mb"),
    ("+seeds=3", "seeds", "seed"),
    ("+paths.tokenizers=x", "paths.tokenizers", "paths.tokenizer"),
])
def test_misspelt_new_key_names_key_and_suggestion(override, key, hint):
    raw = compose("prepare_data", [override])
    with pytest.raises(GraftError) as e:
        to_object(raw)
    msg = str(e.value)
    assert "\n" not in msg and f"unknown key {key!r}" in msg and f"did you mean {hint}?" in msg


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_rejects_a_new_key(group):
    with pytest.raises(GraftError, match=rf"unknown key '{group}\.zzz_not_a_key'"):
        to_object(compose("pipeline", [f"+{group}.zzz_not_a_key=1"]))


def test_plus_on_free_form_nodes_still_works():
    cfg = to_object(compose("evaluate", ["+eval.heldout_texts={zh: data/zh.txt, en: data/en.txt}"]))
    assert cfg.eval.heldout_texts == {"zh": "data/zh.txt", "en": "data/en.txt"}
    cfg = to_object(compose("evaluate", ["+eval.heldout_texts.fr=data/fr.txt"]))
    assert cfg.eval.heldout_texts["fr"] == "data/fr.txt"
    cfg = to_object(compose("prepare_data", ["+data.score.signals.new_signal=0.5"]))
    assert cfg.data.score.signals["new_signal"] == 0.5


def test_every_app_config_has_no_unknown_key():
    for app in ("expand_vocab", "init_model", "prepare_data", "train", "evaluate", "pipeline", "demo_inputs"):
        assert unknown_keys(compose(app, [])) == [], app


def test_cli_misspelt_new_key_is_one_line_exit_2_and_writes_nothing(tmp_path):
    proc = run_app("prepare_data", f"run_root={tmp_path}", "+data.maxlength=5")
    assert_one_line_error(proc, "data.maxlength", "data.max_length")
    assert not (tmp_path / "data").exists()
