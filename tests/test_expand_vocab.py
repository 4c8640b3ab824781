"""`python -m research.expand_vocab` as a user runs it: the folder loads with AutoTokenizer; bad input is one
line, exit 2, nothing written."""

import json

import pytest
from transformers import AutoTokenizer

from tests.conftest import assert_one_line_error, run_app, tokenizer_overrides


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


def test_failed_run_keeps_previous_output(wordlist_run, small_inputs):
    before = (wordlist_run / "tokenizer" / "tokenizer.model").read_bytes()
    proc = run_app("expand_vocab", *tokenizer_overrides(small_inputs, wordlist_run), "tokenizer.target_size=31000")
    assert proc.returncode == 2
    assert (wordlist_run / "tokenizer" / "tokenizer.model").read_bytes() == before


def test_unreachable_target_fails_in_seconds_leaving_nothing(small_inputs, tmp_path):
    import time

    from research.demo.package_data import package_file

    t = time.monotonic()
    proc = run_app("expand_vocab", *tokenizer_overrides(small_inputs, tmp_path), "tokenizer=wordlist",
                   f"tokenizer.sources.0.paths=[{package_file('jieba_dict')}]", "tokenizer.target_size=5000000")
    elapsed = time.monotonic() - t
    assert_one_line_error(proc, "tokenizer.target_size=5000000: unreachable", "can give at most", "dict.txt")
    assert elapsed < 120, elapsed  # the check, not the 349,046 candidates (over 30 minutes before it existed)
    assert not (tmp_path / "tokenizer").exists() and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_sigterm_mid_run_is_one_line_and_leaves_no_temporary_folder(small_inputs, tmp_path):
    """kill (SIGTERM) unwinds like Ctrl-C: atomic_dir removes its temporary folder, the lock goes, exit 143."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "research.expand_vocab",
                             *tokenizer_overrides(small_inputs, tmp_path), "tokenizer=wordlist",
                             f"tokenizer.sources.0.paths=[{small_inputs}/words.txt]"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".tokenizer.tmp-*")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert [ln for ln in stderr.splitlines() if ln.startswith("error:")] == ["error: interrupted by SIGTERM"]
    assert "Traceback" not in stderr
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".tokenizer")]
    assert not (tmp_path / "tokenizer").exists()


# ---- byte-level BPE bases ------------------------------------------------------------------------------------

def bytelevel_overrides(inputs, out, base, *extra):
    return [*tokenizer_overrides(inputs, out), "tokenizer=bytelevel_bpe", f"tokenizer.base_path={base}",
            f"tokenizer.sources=[{{kind:train_bpe,paths:[{inputs}/zh_train.txt],vocab_size:200}},"
            f"{{kind:wordlist,paths:[{inputs}/words.txt]}}]", "tokenizer.eval_max_chars=50000", *extra]


def test_bytelevel_cli_writes_loadable_tokenizer_and_guarantees(small_inputs, tmp_path):
    from tests.tokenizer.conftest import train_tiny_bytelevel

    base = train_tiny_bytelevel(tmp_path / "base")
    proc = run_app("expand_vocab", *bytelevel_overrides(small_inputs, tmp_path, base, "tokenizer.target_size=900",
                                                        "tokenizer.pad_to_multiple_of=128"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "tokenizer"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["base_format"] == "bytelevel" and summary["final_size"] == 1024 == summary["base_size"] + 424
    assert {"base_size", "final_size", "new_pieces", "new_merges", "sources", "compression", "unchanged_lines",
            "guarantees", "run"} <= set(summary)
    assert all(row["ok"] for row in summary["guarantees"].values())
    assert [s["new_tokens"] for s in summary["sources"]] == [200, 224]
    assert summary["compression"]["zh"]["ratio"] < 1.0
    assert len(AutoTokenizer.from_pretrained(str(out))) == 1024
    assert not (out / "tokenizer.model").exists() and (out / "special_tokens_map.json").is_file()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def _bad_base(kind, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder = tmp_path / kind
    folder.mkdir()
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0)], unk_id=0))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
    else:  # a byte-level BPE without its pre-tokenizer
        tok = Tokenizer(models.BPE({"a": 0, "b": 1, "ab": 2}, [("a", "b")]))
    tok.save(str(folder / "tokenizer.json"))
    return folder


@pytest.mark.parametrize("kind,fragment", [("wordpiece", "its model is WordPiece"),
                                           ("unigram", "its model is Unigram"),
                                           ("no_pre_tokenizer", "it has no pre-tokenizer")])
def test_bad_bytelevel_base_is_one_line(small_inputs, tmp_path, kind, fragment):
    base = _bad_base(kind, tmp_path)
    proc = run_app("expand_vocab", *bytelevel_overrides(small_inputs, tmp_path, base))
    assert_one_line_error(proc, "tokenizer.base_path", str(base / "tokenizer.json"), fragment)
    assert not (tmp_path / "tokenizer").exists()


def test_unigram_sentencepiece_base_is_one_line(small_inputs, tmp_path):
    import sentencepiece as spm

    lines = (small_inputs / "zh_train.txt").read_text(encoding="utf-8").splitlines()[:300]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(tmp_path / "uni"),
                                   model_type="unigram", vocab_size=2000, character_coverage=0.98,
                                   hard_vocab_limit=False, minloglevel=2)
    proc = run_app("expand_vocab", *tokenizer_overrides(small_inputs, tmp_path),
                   f"tokenizer.base_path={tmp_path}/uni.model")
    assert_one_line_error(proc, "tokenizer.base_path", "uni.model", "model_type is UNIGRAM", "only BPE")
    assert not (tmp_path / "tokenizer").exists()


def test_train_bpe_on_a_sentencepiece_base_is_one_line(small_inputs, tmp_path):
    proc = run_app("expand_vocab", *tokenizer_overrides(small_inputs, tmp_path),
                   f"tokenizer.sources=[{{kind:train_bpe,paths:[{small_inputs}/zh_train.txt]}}]")
    assert_one_line_error(proc, "tokenizer.sources[0].kind='train_bpe'", "needs a bytelevel base", "train_sp")
    assert not (tmp_path / "tokenizer").exists()
