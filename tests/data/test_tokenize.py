import json

import numpy as np
import pytest
from transformers import AutoTokenizer

from research.config.data import TokenizeConfig
from research.data.records import Record
from research.data.tokenize import load_tokenizer, special_ids, tokenize
from research.errors import GraftError

TEXTS = [("", "中国人民银行今天宣布下调存款准备金率。"), ("Question: is it?\n", "Yes, the passage says so."),
         ("", "Plain English target."), ("很长的问题" * 3, "答案。")] * 40


def _records():
    return [Record("f", i, "c" if i % 2 else "d", s, t) for i, (s, t) in enumerate(TEXTS, 1)]


def test_labels_mask_source_and_add_bos_eos(tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir), use_fast=True)
    sp = special_ids(tok, TokenizeConfig(), str(tokenizer_dir))
    docs, stats = tokenize(_records()[:4], str(tokenizer_dir), sp, TokenizeConfig(batch_size=3), 1, progress=False)
    for d, (src, tgt) in zip(docs, TEXTS, strict=False):
        s = tok(src, add_special_tokens=False)["input_ids"] if src else []
        t = tok(tgt, add_special_tokens=False)["input_ids"]
        assert d.ids.tolist() == [tok.bos_token_id] + s + t + [tok.eos_token_id]
        assert d.n_masked == 1 + len(s)
        assert d.ids.dtype == np.int32
    assert stats["tokens"] == sum(len(d.ids) for d in docs)
    assert stats["label_tokens"] == stats["tokens"] - sum(d.n_masked for d in docs)


@pytest.mark.slow
def test_worker_count_does_not_change_output(tokenizer_dir):
    tok = load_tokenizer(str(tokenizer_dir))
    sp = special_ids(tok, TokenizeConfig(), str(tokenizer_dir))
    one, _ = tokenize(_records(), str(tokenizer_dir), sp, TokenizeConfig(batch_size=7), 1, progress=False)
    two, _ = tokenize(_records(), str(tokenizer_dir), sp, TokenizeConfig(batch_size=7), 2, progress=False)
    assert [(d.ids.tolist(), d.n_masked, d.category) for d in one] == [
        (d.ids.tolist(), d.n_masked, d.category) for d in two]


def test_pad_token_problems_are_one_line_errors(tokenizer_dir, tmp_path):
    for k, (pad, msg) in enumerate(((None, "has no pad token"), ("</s>", "is the EOS token"))):
        d = tmp_path / f"tok_{k}"
        d.mkdir()
        for f in tokenizer_dir.iterdir():
            (d / f.name).write_bytes(f.read_bytes())
        cfg = json.loads((d / "special_tokens_map.json").read_text())
        cfg.pop("pad_token", None)
        if pad:
            cfg["pad_token"] = pad
        (d / "special_tokens_map.json").write_text(json.dumps(cfg))
        tc = json.loads((d / "tokenizer_config.json").read_text())
        tc["pad_token"] = pad
        (d / "tokenizer_config.json").write_text(json.dumps(tc))
        with pytest.raises(GraftError, match=msg):
            special_ids(load_tokenizer(str(d)), TokenizeConfig(), str(d))
    with pytest.raises(GraftError, match="no tokenizer folder"):
        load_tokenizer(str(tmp_path / "nowhere"))
