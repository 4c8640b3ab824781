"""research.tokenizer.bytelevel: which format a base path is, and the one-line errors for bases that are not
byte-level BPE (naming the file and the reason)."""

import json

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from research.errors import GraftError
from research.tokenizer.bytelevel import base_format, load_bytelevel_base, model_vocab


def save(tok, folder):
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder


def wordpiece(folder):
    tok = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1, "##b": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return save(tok, folder)


def unigram(folder):
    tok = Tokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0), ("b", -2.0)], unk_id=0))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    return save(tok, folder)


def no_pre_tokenizer(tiny_bytelevel, folder):
    data = json.loads((tiny_bytelevel / "tokenizer.json").read_text(encoding="utf-8"))
    data["pre_tokenizer"] = None
    folder.mkdir(parents=True)
    (folder / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


def test_base_format(tmp_path, tiny_bytelevel, small_inputs):
    assert base_format(small_inputs / "base.model") == "sentencepiece"
    assert base_format(tiny_bytelevel) == "bytelevel"
    (tmp_path / "t.json").write_text("{}")
    assert base_format(tmp_path / "t.json") == "tiktoken"
    assert base_format(tmp_path / "missing") == "sentencepiece"  # its reader names the missing path
    both = tmp_path / "both"
    both.mkdir()
    (both / "tokenizer.model").write_bytes((small_inputs / "base.model").read_bytes())
    (both / "tokenizer.json").write_text("{}")
    assert base_format(both) == "sentencepiece"  # a LLaMA-2 HF folder has both: as today
    with pytest.raises(GraftError, match="name the folder"):
        base_format(tiny_bytelevel / "tokenizer.json")


@pytest.mark.parametrize("make,fragment", [
    (lambda tiny, d: wordpiece(d), "its model is WordPiece; only BPE"),
    (lambda tiny, d: unigram(d), "its model is Unigram; only BPE"),
    (no_pre_tokenizer, "it has no pre-tokenizer"),
])
def test_not_byte_level_bpe(tiny_bytelevel, tmp_path, make, fragment):
    folder = make(tiny_bytelevel, tmp_path / "base")
    with pytest.raises(GraftError) as e:
        load_bytelevel_base(folder)
    msg = str(e.value)
    assert fragment in msg and str(folder / "tokenizer.json") in msg and "\n" not in msg


def test_metaspace_bpe_is_not_byte_level(tmp_path):
    tok = Tokenizer(models.BPE({"a": 0, "b": 1, "ab": 2}, [("a", "b")]))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    with pytest.raises(GraftError, match="pre-tokenizer is Metaspace"):
        load_bytelevel_base(save(tok, tmp_path / "m"))


def test_added_tokens_after_the_vocabulary_get_model_entries(llama3_dir, tiny_bytelevel):
    base = load_bytelevel_base(llama3_dir)
    assert base.size == 130080 and base.added == set(range(130072, 130080))
    vocab = model_vocab(base)
    assert vocab["<|begin_of_text|>"] == 130072 and len(vocab) == 130080
    assert all(vocab[t] == i for t, i in base.vocab.items())
    tiny = load_bytelevel_base(tiny_bytelevel)  # its special token is a model entry already
    assert model_vocab(tiny) == tiny.vocab and tiny.size == 600
