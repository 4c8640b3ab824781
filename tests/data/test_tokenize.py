import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from research.config.data import TokenizeConfig
from research.data.demo_corpus import build_demo_corpus
from research.data.document import Record
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


def _demo_records(root: Path) -> list[Record]:
    """Every parseable record of a small demo corpus, noise included (the tokenizer must agree on all of it)."""
    build_demo_corpus(root, seed=5, num_reviews=300, num_wiki=80, num_news=80)
    out = []
    for f in sorted(root.glob("*.jsonl")):
        for n, raw in enumerate(f.read_bytes().split(b"\n"), 1):
            try:
                obj = json.loads(raw.decode("utf-8"))
                src, tgt = obj.get("source") or "", obj["target"]
                if isinstance(src, str) and isinstance(tgt, str):
                    (src + tgt).encode("utf-8")  # a lone surrogate is rejected by clean, never tokenized
                    out.append(Record(f.name, n, f.stem, src, tgt))
            except (ValueError, KeyError, TypeError, AttributeError, UnicodeError):
                pass
    return out


EDGE = [("", " leading space target"), ("Question:", " answer after a space"), ("  two spaces", "x"),
        ("", "text that spells </s> and <s> and <unk>"), ("source without space", "target"), ("", "\n\nnewlines"),
        ("", "中文目标，没有空格。"), ("问题：", "答案。")]


def test_sentencepiece_backend_equals_the_hf_fast_tokenizer_on_the_demo_corpus(tokenizer_dir, tmp_path):
    import sentencepiece as spm

    records = _demo_records(tmp_path / "corpus")
    records += [Record("edge", i, "edge", s, t) for i, (s, t) in enumerate(EDGE, 1)]
    assert len(records) > 400 and sum(1 for r in records if r.source) >= 20
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir), use_fast=True)
    sp_ids = special_ids(tok, TokenizeConfig(), str(tokenizer_dir))
    docs, stats = tokenize(records, str(tokenizer_dir), sp_ids, TokenizeConfig(backend="sentencepiece", batch_size=64),
                           2, progress=False)
    assert stats["backend"] == "sentencepiece"

    def hf(text):  # the convention: each segment alone, no special tokens, special-token spellings as text
        return tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"] if text else []

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_dir / "tokenizer.model"))
    for d, r in zip(docs, records, strict=True):
        assert d.ids.tolist() == [tok.bos_token_id] + hf(r.source) + hf(r.target) + [tok.eos_token_id], r.uid
        assert d.n_masked == 1 + len(hf(r.source))
        for seg in (r.source, r.target):  # raw SentencePiece itself gives these ids
            if seg and not seg[:1].isspace():
                assert sp.encode(seg) == hf(seg), (r.uid, seg[:40])
    # a target after a non-empty source starts with its own dummy prefix "▁", exactly as if encoded alone
    d = docs[-1]
    assert tok.convert_ids_to_tokens(d.ids[d.n_masked:d.n_masked + 1].tolist())[0].startswith("▁")
    hf_docs, hf_stats = tokenize(records, str(tokenizer_dir), sp_ids, TokenizeConfig(backend="hf"), 1, progress=False)
    assert hf_stats["backend"] == "hf"
    assert [x.ids.tolist() for x in hf_docs] == [x.ids.tolist() for x in docs]


def test_backend_falls_back_to_hf_without_a_model_or_when_they_disagree(tokenizer_dir, tmp_path):
    records = [Record("f", i, "c", s, t) for i, (s, t) in enumerate(EDGE, 1)]
    no_model = tmp_path / "no_model"
    shutil.copytree(tokenizer_dir, no_model)
    (no_model / "tokenizer.model").unlink()
    conf = json.loads((no_model / "tokenizer_config.json").read_text())
    del conf["add_prefix_space"]  # it forces a conversion from tokenizer.model; tokenizer.json already holds it
    (no_model / "tokenizer_config.json").write_text(json.dumps(conf))
    tok = load_tokenizer(str(no_model))
    sp = special_ids(tok, TokenizeConfig(), str(no_model))
    _, stats = tokenize(records, str(no_model), sp, TokenizeConfig(), 1, progress=False)
    assert stats["backend"] == "hf" and "no tokenizer.model" in stats["backend_reason"]
    with pytest.raises(GraftError, match="backend=sentencepiece: no tokenizer.model"):
        tokenize(records, str(no_model), sp, TokenizeConfig(backend="sentencepiece"), 1, progress=False)
    # a fast tokenizer without the dummy prefix encodes differently from its own tokenizer.model
    other = tmp_path / "no_prefix"
    shutil.copytree(no_model, other)
    shutil.copy(tokenizer_dir / "tokenizer.model", other / "tokenizer.model")
    spec = json.loads((other / "tokenizer.json").read_text())
    assert spec["pre_tokenizer"]["type"] == "Metaspace"
    spec["pre_tokenizer"]["prepend_scheme"] = "never"
    (other / "tokenizer.json").write_text(json.dumps(spec))
    tok = load_tokenizer(str(other))
    docs, stats = tokenize(records, str(other), sp, TokenizeConfig(), 1, progress=False)
    assert stats["backend"] == "hf" and "differently" in stats["backend_reason"]
    assert docs[4].ids[1:-1].tolist() == tok("source without space", add_special_tokens=False)["input_ids"] + tok(
        "target", add_special_tokens=False)["input_ids"]
    with pytest.raises(GraftError, match="encode .* differently"):
        tokenize(records, str(other), sp, TokenizeConfig(backend="sentencepiece"), 1, progress=False)
