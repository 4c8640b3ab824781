"""research.tokenizer.sources: candidate pieces from training text (a real SentencePiece model), a jieba-format
word list and a pieces jsonl, and the one-line errors that name the bad file, line or value."""

import json
import os

import pytest
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

from research.config.tokenizer import SourceConfig, TokenizerConfig
from research.errors import ConfigError, GraftError
from research.tokenizer import sources
from research.tokenizer.sources import SOURCES, pieces_jsonl, register, train_sp, training_lines, wordlist

KEY = "tokenizer.sources[0]"
SENTENCES = ["我们的国家正在迅速发展，人民生活水平不断提高。", "中国人民银行今天发布了新的货币政策。",
             "今年的经济增长速度超过了预期。", "北京是中华人民共和国的首都。", "科学技术是第一生产力，教育是国家发展的基础。"]


def src(kind, *paths, **kw):
    return SourceConfig(kind=kind, paths=[str(p) for p in paths], **kw)


def tok_cfg(seed=0):
    return TokenizerConfig(base_path="base.model", num_threads=1, seed=seed)


def candidates(s, workdir, seed=0):
    """A source run as expansion runs every kind: SOURCES[kind](src, key, tokenizer config, work folder)."""
    return list(SOURCES[s.kind](s, KEY, tok_cfg(seed), workdir))


def test_every_kind_is_registered_once_in_order(monkeypatch):
    assert list(SOURCES) == ["train_sp", "wordlist", "pieces_jsonl", "train_bpe"]
    assert (SOURCES["train_sp"], SOURCES["wordlist"], SOURCES["pieces_jsonl"]) == (train_sp, wordlist, pieces_jsonl)
    with pytest.raises(ValueError, match="tokenizer source kind 'wordlist' is registered twice"):
        register("wordlist")(lambda *a: [])
    assert SOURCES["wordlist"] is wordlist
    monkeypatch.delitem(SOURCES, "fixed", raising=False)  # undone after the test, with the kind below

    @register("fixed")  # a new kind is one registered function
    def fixed(s, key, cfg, workdir):
        return ["甲乙"]

    assert list(sources.SOURCES) == ["train_sp", "wordlist", "pieces_jsonl", "train_bpe", "fixed"]
    assert SourceConfig(kind="fixed").kind == "fixed"
    SOURCES.pop("fixed")
    with pytest.raises(ConfigError, match="nope"):
        SourceConfig(kind="nope")


# ---- training text ---------------------------------------------------------------------------------------------

def test_training_lines_from_text_skip_blank_lines_and_keep_the_rest(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("第一行\n\n   \n  第二行 有空格  \r\nlast", encoding="utf-8")
    assert list(training_lines(src("train_sp", f), KEY)) == ["第一行", "  第二行 有空格  ", "last"]


def test_training_lines_from_jsonl_split_the_field_into_lines(tmp_path):
    f = tmp_path / "docs.jsonl"
    f.write_text("\n".join([json.dumps({"text": "甲\n\n乙", "id": 1}, ensure_ascii=False), "",
                            json.dumps({"body": "丙丁", "text": "戊"}, ensure_ascii=False)]) + "\n", encoding="utf-8")
    t = tmp_path / "more.txt"
    t.write_text("己\n", encoding="utf-8")
    assert list(training_lines(src("train_sp", f, t), KEY)) == ["甲", "乙", "戊", "己"]  # in path order
    g = tmp_path / "bodies.jsonl"
    g.write_text(json.dumps({"body": "庚\n辛", "text": 1}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert list(training_lines(src("train_sp", g, jsonl_field="body"), KEY)) == ["庚", "辛"]


def test_training_lines_jsonl_errors_name_file_and_line(tmp_path):
    f = tmp_path / "docs.jsonl"
    f.write_text('{"text": "ok"}\n{"body": "丙"}\n', encoding="utf-8")
    with pytest.raises(GraftError) as e:
        list(training_lines(src("train_sp", f, jsonl_field="body"), KEY))
    assert str(e.value) == f"{KEY}: {f}:1: field 'body' missing or not a string"

    f.write_text('{"text": "ok"}\n{"text": 3}\n', encoding="utf-8")
    with pytest.raises(GraftError, match=r":2: field 'text' missing or not a string$"):
        list(training_lines(src("train_sp", f), KEY))
    f.write_text('{"text": "ok"}\n\n{"text": "broken\n', encoding="utf-8")
    with pytest.raises(GraftError) as e:
        list(training_lines(src("train_sp", f), KEY))
    assert str(e.value) == f"{KEY}: {f}:3: corrupt jsonl line (JSONDecodeError)"
    f.write_bytes(b'{"text": "\xff\xfe"}\n')
    with pytest.raises(GraftError, match=r":1: corrupt jsonl line \(UnicodeDecodeError\)$"):
        list(training_lines(src("train_sp", f), KEY))
    f.write_text('{"text": "ok"}\n["text"]\n', encoding="utf-8")
    with pytest.raises(GraftError) as e:
        list(training_lines(src("train_sp", f), KEY))
    assert str(e.value) == f"{KEY}: {f}:2: expected a JSON object, got list"


def test_training_lines_reject_non_utf8_text_and_missing_files(tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("ok\ncafé\n".encode("latin-1"))
    with pytest.raises(GraftError) as e:
        list(training_lines(src("train_sp", f), KEY))
    assert str(e.value) == f"{KEY}: {f} is not valid UTF-8 text"
    missing = tmp_path / "nope.txt"
    with pytest.raises(GraftError) as e:
        list(training_lines(src("train_sp", missing), KEY))
    assert str(e.value) == f"{KEY}: {str(missing)!r} is not a readable file"
    with pytest.raises(GraftError, match="is not a readable file"):  # a folder is not a file
        list(training_lines(src("train_sp", tmp_path), KEY))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_names_the_os_error(tmp_path):
    f = tmp_path / "secret.txt"
    f.write_text("x\n", encoding="utf-8")
    f.chmod(0)
    try:
        with pytest.raises(GraftError) as e:
            list(training_lines(src("train_sp", f), KEY))
        assert str(e.value) == f"{KEY}: cannot read {str(f)!r} (Permission denied)"
    finally:
        f.chmod(0o644)


@pytest.mark.skipif(not os.path.isfile("/proc/self/mem"), reason="needs Linux procfs")
def test_file_that_fails_to_read_names_the_os_error():
    # A regular file whose first byte cannot be read (offset 0 of a process's memory is unmapped): EIO, even as root.
    with pytest.raises(GraftError) as e:
        wordlist(src("wordlist", "/proc/self/mem"), KEY)
    assert str(e.value) == f"{KEY}: cannot read '/proc/self/mem' (Input/output error)"


@pytest.fixture(scope="module")
def zh_text(tmp_path_factory):
    f = tmp_path_factory.mktemp("sp") / "zh.txt"
    f.write_text("\n".join(SENTENCES * 20) + "\n\n", encoding="utf-8")
    return f


def test_train_sp_returns_characters_then_merges_by_score(zh_text, tmp_path):
    pieces = candidates(src("train_sp", zh_text, vocab_size=150), tmp_path)
    model = pb.ModelProto()
    model.ParseFromString((tmp_path / "candidates.model").read_bytes())  # the model is kept in workdir
    normal = [p for p in model.pieces if p.type == pb.ModelProto.SentencePiece.NORMAL]
    assert sorted(pieces) == sorted(p.piece for p in normal) and len(set(pieces)) == len(pieces)
    n_chars = sum(len(p) == 1 for p in pieces)
    assert all(len(p) == 1 for p in pieces[:n_chars]) and all(len(p) > 1 for p in pieces[n_chars:])
    chars_in_text = set("".join(SENTENCES))
    assert set(pieces[:n_chars]) == chars_in_text | {"▁"}  # every character of the text is a candidate
    score = {p.piece: p.score for p in normal}
    merged = [score[p] for p in pieces[n_chars:]]
    assert merged == sorted(merged, reverse=True) and len(merged) > 10
    assert "人民" in pieces[n_chars:]  # a frequent pair of the text is merged
    # Trained with the base's conventions.
    spec, norm = model.trainer_spec, model.normalizer_spec
    assert spec.model_type == pb.TrainerSpec.BPE and spec.split_digits and not spec.byte_fallback
    assert norm.name == "identity"
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "candidates.model"))
    assert sp.decode(sp.encode(SENTENCES[0])) == SENTENCES[0]


def test_train_sp_is_deterministic_for_a_seed(zh_text, tmp_path):
    a = candidates(src("train_sp", zh_text, vocab_size=120), tmp_path, seed=3)
    b = candidates(src("train_sp", zh_text, vocab_size=120), tmp_path, seed=3)
    assert a == b


def test_train_sp_errors_are_one_line_graft_errors(tmp_path, zh_text):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(GraftError) as e:
        candidates(src("train_sp", empty), tmp_path)
    assert str(e.value) == f"{KEY}: no text in {[str(empty)]}"
    with pytest.raises(GraftError) as e:
        candidates(src("train_sp", zh_text, vocab_size=5), tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"{KEY}: SentencePiece training failed: ") and "\n" not in msg
    assert "Vocabulary size is smaller than required_chars" in msg
    assert not (tmp_path / "candidates.model").exists()


def test_train_sp_keeps_the_message_of_an_error_after_the_first_line(tmp_path):
    """Only the first line is read before training starts (expansion checks beforehand that every path is a
    readable file, not what is in it): an error in a later line must keep its file, line and reason."""
    f = tmp_path / "docs.jsonl"
    f.write_text("\n".join([json.dumps({"text": s}, ensure_ascii=False) for s in SENTENCES * 4] + ["{torn"]) + "\n",
                 encoding="utf-8")
    with pytest.raises(GraftError) as e:
        candidates(src("train_sp", f, vocab_size=100), tmp_path)
    assert str(e.value) == f"{KEY}: {f}:21: corrupt jsonl line (JSONDecodeError)"


# ---- word lists ------------------------------------------------------------------------------------------------

def test_wordlist_orders_by_frequency_then_file_order(tmp_path):
    a = tmp_path / "dict.txt"
    a.write_text("中国 500 ns\n人民 300 n\n发展 500 v\n\n的确 2 d\n银行 300\n", encoding="utf-8")
    b = tmp_path / "extra.txt"
    b.write_text("新词\n政策 500 n\n", encoding="utf-8")
    words = candidates(src("wordlist", a, b), tmp_path)
    assert words == ["中国", "发展", "政策", "人民", "银行", "的确", "新词"]  # a word without a frequency counts 1
    assert list(wordlist(src("wordlist", a, b, min_freq=300), KEY)) == ["中国", "发展", "政策", "人民", "银行"]
    assert list(wordlist(src("wordlist", a, b, min_freq=501), KEY)) == []
    assert list(wordlist(src("wordlist", b, min_freq=0), KEY)) == ["政策", "新词"]


def test_wordlist_errors_name_the_line_and_value_before_any_word_is_read(tmp_path):
    f = tmp_path / "dict.txt"
    f.write_text("中国 500 ns\n人民 many n\n", encoding="utf-8")
    with pytest.raises(GraftError) as e:
        wordlist(src("wordlist", f), KEY)  # raised by the call itself, not on iteration
    assert str(e.value) == f"{KEY}: {f}:2: frequency 'many' is not an integer"
    f.write_bytes("中国 500 ns\n".encode() + b"\xff\xfe 3\n")
    with pytest.raises(GraftError) as e:
        wordlist(src("wordlist", f), KEY)
    assert str(e.value) == f"{KEY}: {f}:2: not valid UTF-8"
    with pytest.raises(GraftError, match="is not a readable file"):
        wordlist(src("wordlist", tmp_path / "missing.txt"), KEY)


# ---- pieces jsonl ----------------------------------------------------------------------------------------------

def test_pieces_jsonl_in_file_order(tmp_path):
    a = tmp_path / "a.jsonl"
    a.write_text("\n".join(json.dumps({"piece": p, "score": s}, ensure_ascii=False)
                           for p, s in [("▁人民", 1), ("银行", 9), ("的", 5)]) + "\n\n", encoding="utf-8")
    b = tmp_path / "b.jsonl"
    b.write_text(json.dumps({"piece": "货币"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert candidates(src("pieces_jsonl", a, b), tmp_path) == ["▁人民", "银行", "的", "货币"]


def test_pieces_jsonl_errors_name_file_and_line(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"piece": "a"}\n{"token": "b"}\n', encoding="utf-8")
    it = pieces_jsonl(src("pieces_jsonl", f), KEY)
    assert next(it) == "a"
    with pytest.raises(GraftError) as e:
        next(it)
    assert str(e.value) == f"{KEY}: {f}:2: field 'piece' missing or not a string"
    f.write_text('{"piece": 7}\n', encoding="utf-8")
    with pytest.raises(GraftError, match=r":1: field 'piece' missing or not a string$"):
        list(pieces_jsonl(src("pieces_jsonl", f), KEY))
    f.write_text('"just a string"\n', encoding="utf-8")
    with pytest.raises(GraftError, match=r":1: expected a JSON object, got str$"):
        list(pieces_jsonl(src("pieces_jsonl", f), KEY))
