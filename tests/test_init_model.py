"""`python -m research.init_model` as a user runs it: the folder loads with the Auto classes; bad input is one
line, exit 2."""

import json

from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.conftest import assert_one_line_error, run_app


def test_init_model_cli_writes_loadable_model(wordlist_run, small_inputs):
    proc = run_app("init_model", f"run_root={wordlist_run}", "init=subword_mean", "model.hidden_size=16",
                   "model.intermediate_size=32", "model.num_attention_heads=2", "model.num_key_value_heads=2",
                   f"+init.heldout_texts.en={small_inputs}/en.txt", f"+init.heldout_texts.zh={small_inputs}/zh_heldout.txt",
                   "init.diagnostics_chars=2000", "logger=wandb_offline")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = wordlist_run / "model"
    model = AutoModelForCausalLM.from_pretrained(str(out), use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(str(out))
    assert model.get_input_embeddings().weight.shape[0] == len(tok) == 33536
    summary = json.loads((out / "summary.json").read_text())
    assert summary["strategy"] == "subword_mean" and summary["new_size"] == 33536
    assert summary["text_rejects"] == {} and (out / "rejects.jsonl").read_text() == ""
    diag = summary["diagnostics"]  # step 0, in summary.json and in the W&B run
    assert set(diag["heldout"]) == {"en", "zh"} and diag["heldout"]["en"]["init"] >= diag["heldout"]["en"]["base"]
    from tests.test_tracking import read_wandb_records

    (store,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    keys = {i.key or "/".join(i.nested_key) for r in read_wandb_records(store) if r.WhichOneof("record_type") == "history"
            for i in r.history.item}
    assert {"init/heldout/en/init", "init/heldout/zh/base", "init/kl_mean", "init/new_token_mass/mean"} <= keys


def test_bad_value_cli(tmp_path):
    proc = run_app("init_model", f"run_root={tmp_path}", "init.strategy=averaged")
    assert_one_line_error(proc, "init.strategy='averaged'", "subword_mean")


def test_init_without_tokenizer(tmp_path):
    proc = run_app("init_model", f"run_root={tmp_path}")
    assert_one_line_error(proc, "paths.tokenizer")
    assert not (tmp_path / "model").exists()


def test_corpus_strategy_without_text_is_one_line(tmp_path):
    proc = run_app("init_model", f"run_root={tmp_path}", "init=focus")
    assert_one_line_error(proc, "init.domain_text=None", "init.strategy=focus")
    proc = run_app("init_model", f"run_root={tmp_path}", "init=guarded", f"init.domain_text={tmp_path}/zh.txt")
    assert_one_line_error(proc, "init.base_text=None", "init.strategy=guarded")
    assert not (tmp_path / "model").exists()


def test_token_distill_budget_zero_is_one_line(tmp_path):
    proc = run_app("init_model", f"run_root={tmp_path}", "init=token_distill", "init.distill_steps=0")
    assert_one_line_error(proc, "init.distill_steps=0", "budget")
