"""The apps end to end as a user runs them: outputs load with the Auto classes; bad input is one line, exit 2."""

import json
import subprocess
import sys

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.conftest import tokenizer_overrides


def run_app(app, *overrides):
    return subprocess.run([sys.executable, "-m", f"research.{app}", *overrides], capture_output=True, text=True,
                          timeout=600)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture(scope="module")
def wordlist_run(small_inputs, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    proc = run_app("expand_vocab", *tokenizer_overrides(small_inputs, root), "tokenizer=wordlist",
                   f"tokenizer.sources.0.paths=[{small_inputs}/words.txt]", "tokenizer.pad_to_multiple_of=64")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def test_expand_vocab_cli_writes_loadable_tokenizer(wordlist_run):
    out = wordlist_run / "tokenizer"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_size"] == 33536 and 33536 % 64 == 0
    assert summary["consistency"]["slow_differs"] == summary["consistency"]["fast_differs"] == 0
    assert summary["compression"]["zh"]["ratio"] < 1.0
    en = summary["unchanged_lines"]["en"]
    assert en["unchanged_without_cjk"] == en["lines_without_cjk"] > 150
    assert summary["run"]["versions"]["transformers"] == "4.51.3"
    assert (out / "config.yaml").is_file()
    for use_fast in (False, True):
        assert len(AutoTokenizer.from_pretrained(str(out), use_fast=use_fast)) == 33536
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def test_init_model_cli_writes_loadable_model(wordlist_run):
    proc = run_app("init_model", f"run_root={wordlist_run}", "init=subword_mean", "model.hidden_size=16",
                   "model.intermediate_size=32", "model.num_attention_heads=2", "model.num_key_value_heads=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = wordlist_run / "model"
    model = AutoModelForCausalLM.from_pretrained(str(out), use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(str(out))
    assert model.get_input_embeddings().weight.shape[0] == len(tok) == 33536
    summary = json.loads((out / "summary.json").read_text())
    assert summary["strategy"] == "subword_mean" and summary["new_size"] == 33536


def test_missing_base_path(small_inputs, tmp_path):
    proc = run_app("expand_vocab", *tokenizer_overrides(small_inputs, tmp_path), "tokenizer.base_path=/nonexistent/tok.model")
    assert_one_line_error(proc, "tokenizer.base_path", "/nonexistent/tok.model")
    assert not (tmp_path / "tokenizer").exists()


def test_target_smaller_than_base_cli(small_inputs, tmp_path):
    proc = run_app("expand_vocab", *tokenizer_overrides(small_inputs, tmp_path), "tokenizer.target_size=30000")
    assert_one_line_error(proc, "tokenizer.target_size=30000", "32000")
    assert not (tmp_path / "tokenizer").exists()


def test_unreadable_corpus(small_inputs, tmp_path):
    proc = run_app("expand_vocab", *tokenizer_overrides(small_inputs, tmp_path),
                   f"tokenizer.sources.0.paths=[{tmp_path}/missing.txt]")
    assert_one_line_error(proc, "missing.txt")
    assert not (tmp_path / "tokenizer").exists()


def test_corrupt_jsonl_cli(small_inputs, tmp_path):
    bad = tmp_path / "pieces.jsonl"
    bad.write_text('{"piece": "天山"}\nnot json\n', encoding="utf-8")
    proc = run_app("expand_vocab", *tokenizer_overrides(small_inputs, tmp_path), "tokenizer=pieces_jsonl",
                   f"tokenizer.sources=[{{kind:pieces_jsonl,paths:[{bad}]}}]")
    assert_one_line_error(proc, "pieces.jsonl:2")
    assert not list(tmp_path.glob("*tokenizer*"))


def test_bad_value_cli(tmp_path):
    proc = run_app("init_model", f"run_root={tmp_path}", "init.strategy=averaged")
    assert_one_line_error(proc, "init.strategy='averaged'", "subword_mean")


def test_init_without_tokenizer(tmp_path):
    proc = run_app("init_model", f"run_root={tmp_path}")
    assert_one_line_error(proc, "paths.tokenizer")
    assert not (tmp_path / "model").exists()


def test_failed_run_keeps_previous_output(wordlist_run, small_inputs):
    before = (wordlist_run / "tokenizer" / "tokenizer.model").read_bytes()
    proc = run_app("expand_vocab", *tokenizer_overrides(small_inputs, wordlist_run), "tokenizer.target_size=31000")
    assert proc.returncode == 2
    assert (wordlist_run / "tokenizer" / "tokenizer.model").read_bytes() == before
