"""The byte-level expansion stage end to end in-process, on a tiny GPT-2-style base and on Llama-3- and
Qwen2-format folders built from Tekken's real vocabulary: what summary.json guarantees, checked again here
independently of the stage's own checks."""

import json

import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from research.errors import GraftError
from research.tokenizer.script import is_han
from tests.tokenizer.conftest import bytelevel_cfg, run_bytelevel

GUARANTEES = {"base_unchanged", "unchanged_without_script", "round_trip", "auto_tokenizer", "size", "reachable"}


def lines_of(path, n=None):
    return [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()][:n]


def check_folder(base_dir, out, inputs, final_size):
    """The promises, each recomputed from the two folders."""
    base, new = (Tokenizer.from_file(str(d / "tokenizer.json")) for d in (base_dir, out))
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["guarantees"]) == GUARANTEES and all(r["ok"] for r in summary["guarantees"].values())
    assert new.get_vocab_size(with_added_tokens=True) == summary["final_size"] == final_size
    base_size = summary["base_size"]
    # base ids and added tokens untouched
    bj, nj = (json.loads((d / "tokenizer.json").read_text(encoding="utf-8")) for d in (base_dir, out))
    assert nj["added_tokens"] == bj["added_tokens"]
    assert nj["pre_tokenizer"] == bj["pre_tokenizer"] and nj["decoder"] == bj["decoder"]
    assert nj["model"]["merges"][: len(bj["model"]["merges"])] == bj["model"]["merges"]
    assert all(nj["model"]["vocab"][t] == i for t, i in bj["model"]["vocab"].items())
    assert {t["content"]: t["id"] for t in bj["added_tokens"]} == \
        {t: new.token_to_id(t) for t in (x["content"] for x in bj["added_tokens"])}
    # English identical, Chinese shorter, round trip
    en = lines_of(inputs / "en.txt", 100)
    zh = lines_of(inputs / "zh_heldout.txt", 200)
    for line in en:
        if not any(is_han(c) for c in line):
            assert new.encode(line, add_special_tokens=False).ids == base.encode(line, add_special_tokens=False).ids
    n_base = sum(len(base.encode(x, add_special_tokens=False).ids) for x in zh)
    n_new = sum(len(new.encode(x, add_special_tokens=False).ids) for x in zh)
    assert n_new < n_base
    norm = new.normalizer
    for line in en + zh:
        want = norm.normalize_str(line) if norm else line
        assert new.decode(new.encode(line, add_special_tokens=False).ids, skip_special_tokens=False) == want
    # every new token that is whole characters comes back from its own text
    whole = 0
    for i in range(base_size, final_size):
        raw = bytes(_BYTE[c] for c in new.id_to_token(i))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        whole += 1
        assert new.encode(text, add_special_tokens=False).ids == [i], text
    assert whole > 0.25 * (final_size - base_size)  # the rest end inside a character (the tiny base has no Han)
    auto = AutoTokenizer.from_pretrained(str(out))
    assert len(auto) == final_size
    assert auto(zh[:20], add_special_tokens=False)["input_ids"] == [new.encode(x, add_special_tokens=False).ids
                                                                   for x in zh[:20]]
    return summary, auto


def _byte_decoder():
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {c: b for b, c in bytes_to_unicode().items()}


_BYTE = _byte_decoder()


@pytest.fixture(scope="module")
def tiny_run(tiny_bytelevel, small_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_run")
    return run_bytelevel(tiny_bytelevel, small_inputs, out, "tokenizer.target_size=1000",
                         "tokenizer.pad_to_multiple_of=64")


def test_tiny_base_exact_padded_size_and_every_guarantee(tiny_bytelevel, tiny_run, small_inputs):
    summary, _ = check_folder(tiny_bytelevel, tiny_run, small_inputs, 1024)
    assert summary["base_size"] == 600 and summary["new_pieces"] == 424
    first, second = summary["sources"]
    assert first["kind"] == "train_bpe" and first["new_tokens"] == first["added"] == 300
    assert second["kind"] == "wordlist" and second["new_tokens"] == 124
    assert second["added"] + second["intermediates_added"] == 124 and second["offered"] > second["added"]
    assert {k for k in second if k.startswith("skipped_")} >= {"skipped_duplicate"}
    assert set(summary["compression"]["zh"]) == {"lines", "chars", "base_tokens", "expanded_tokens",
                                                 "base_tokens_per_char", "expanded_tokens_per_char", "ratio"}
    assert summary["compression"]["zh"]["ratio"] < 0.9 and summary["compression"]["en"]["ratio"] > 0.99
    en = summary["unchanged_lines"]["en"]
    assert en["unchanged_without_script"] == en["lines_without_script"] > 80
    assert (tiny_run / "config.yaml").is_file()


def test_runs_are_deterministic(tiny_bytelevel, tiny_run, small_inputs, tmp_path):
    again = run_bytelevel(tiny_bytelevel, small_inputs, tmp_path, "tokenizer.target_size=1000",
                          "tokenizer.pad_to_multiple_of=64")
    assert (again / "tokenizer.json").read_bytes() == (tiny_run / "tokenizer.json").read_bytes()


def test_up_front_errors_leave_nothing(tiny_bytelevel, small_inputs, tmp_path):
    from research.tokenizer.bytelevel_stage import run

    for extra, fragment in [(["tokenizer.target_size=500"], "smaller than the base vocabulary (600 tokens)"),
                            (["tokenizer.target_size=90000000"], "unreachable"),
                            ([f"tokenizer.sources=[{{kind:train_sp,paths:[{small_inputs}/zh_train.txt]}}]"],
                             "needs a sentencepiece base")]:
        cfg, raw = bytelevel_cfg(tiny_bytelevel, small_inputs, tmp_path, *extra)
        with pytest.raises(GraftError) as e:
            run(cfg, raw)
        assert fragment in str(e.value) and "\n" not in str(e.value)
        assert not (tmp_path / "tokenizer").exists()


def news_only(inputs):
    return f"tokenizer.sources=[{{kind:train_bpe,paths:[{inputs}/zh_train.txt],vocab_size:300}}]"


def test_llama3_format(llama3_dir, small_inputs, tmp_path):
    out = run_bytelevel(llama3_dir, small_inputs, tmp_path, "tokenizer.target_size=130380", news_only(small_inputs))
    summary, auto = check_folder(llama3_dir, out, small_inputs, 130380)
    print(summary["seconds"])
    assert summary["base_size"] == 130080  # 130,072 ranks + 8 special tokens after them
    assert auto("你好").input_ids[0] == auto.bos_token_id == 130072  # the TemplateProcessing BOS still works
    assert json.loads((out / "tokenizer.json").read_text())["model"]["ignore_merges"] is True


def test_qwen2_format(qwen2_dir, small_inputs, tmp_path):
    out = run_bytelevel(qwen2_dir, small_inputs, tmp_path, "tokenizer.target_size=130375", news_only(small_inputs))
    summary, auto = check_folder(qwen2_dir, out, small_inputs, 130375)
    assert auto.bos_token_id is None and auto("你好").input_ids[0] != auto.eos_token_id
    assert json.loads((out / "tokenizer.json").read_text())["normalizer"]["type"] == "NFC"
