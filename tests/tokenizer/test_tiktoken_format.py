"""research.tokenizer.tiktoken_format: the real Tekken file converted to an HF folder encodes real text to the ids
of mistral-common's own Tekkenizer, through `tokenizers` and through AutoTokenizer, in seconds."""

import base64
import json
import time

import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from research.demo import package_data as pkg
from research.demo.package_data import package_path
from research.errors import GraftError
from research.tokenizer.tiktoken_format import (
    LEGACY_SPECIAL_TOKENS,
    convert_tiktoken,
    derive_merges,
    read_tiktoken,
)


@pytest.fixture(scope="module")
def tekkenizer():
    # mistral-common's Tekkenizer needs tiktoken, pycountry and pydantic-extra-types (dev dependencies).
    from mistral_common.tokens.tokenizers import tekken

    return tekken.Tekkenizer.from_file(str(package_path("mistral_common", "data/tekken_240718.json")))


def real_lines():
    english = pkg.english_passages(limit=300)
    chinese = [p for a in pkg.peoples_daily_articles()[:150] for p in a.split("\n")]
    return english + chinese + pkg.reviews()[:300]


def test_converted_tekken_equals_mistral_common(tekken_dir, tekkenizer):
    lines = real_lines()
    assert len(lines) > 1500
    want = [tekkenizer.encode(line, bos=False, eos=False) for line in lines]
    tok = Tokenizer.from_file(str(tekken_dir / "tokenizer.json"))
    assert [e.ids for e in tok.encode_batch(lines, add_special_tokens=False)] == want
    auto = AutoTokenizer.from_pretrained(str(tekken_dir))
    assert auto(lines, add_special_tokens=False)["input_ids"] == want
    assert [auto.decode(ids) for ids in want[:50]] == lines[:50]
    # sizes, special tokens and their roles are mistral-common's
    assert len(auto) == tok.get_vocab_size(with_added_tokens=True) == tekkenizer.n_words == 131072
    assert (auto.unk_token_id, auto.bos_token_id, auto.eos_token_id, auto.pad_token_id) == \
        (tekkenizer.unk_id, tekkenizer.bos_id, tekkenizer.eos_id, tekkenizer.pad_id) == (0, 1, 2, 11)
    assert [tok.id_to_token(i) for i in range(1000)] == [tekkenizer.id_to_piece(i) for i in range(1000)]
    assert auto("Hello").input_ids == tekkenizer.encode("Hello", bos=True, eos=False)  # BOS as Tekken adds it
    data = json.loads((tekken_dir / "tokenizer.json").read_text(encoding="utf-8"))
    assert data["model"]["ignore_merges"] is True and len(data["model"]["merges"]) == 269443
    assert all(t["special"] for t in data["added_tokens"]) and len(data["added_tokens"]) == 1000


def test_conversion_takes_seconds(tmp_path):
    t = time.monotonic()
    report = convert_tiktoken(package_path("mistral_common", "data/tekken_240718.json"), tmp_path / "tok")
    elapsed = time.monotonic() - t
    assert report["size"] == 131072 and report["ranks"] == 130072 and report["merges"] == 269443
    assert report["pad_token"] == "<pad>"
    assert elapsed < 60, elapsed  # about 4 s on 2 quiet cores; generous for a busy machine


def small_tiktoken(path, specials=None, n_special=4, size=None):
    """A tiktoken-format file with the 256 bytes and a few merged tokens."""
    tokens = [bytes([b]) for b in range(256)] + [b"ab", b"abc", b"  ", "中".encode()[:2]]
    vocab = [{"rank": i, "token_bytes": base64.b64encode(t).decode(), "token_str": None} for i, t in enumerate(tokens)]
    data = {"config": {"pattern": r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+",
                       "default_vocab_size": size or n_special + len(tokens), "default_num_special_tokens": n_special,
                       "version": "v3"}, "vocab": vocab}
    if specials is not None:
        data["special_tokens"] = [{"rank": i, "token_str": s, "is_control": True} for i, s in enumerate(specials)]
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_special_tokens_from_the_file_or_the_legacy_names(tmp_path):
    listed = read_tiktoken(small_tiktoken(tmp_path / "a.json", specials=["<unk>", "<s>", "</s>"]))
    assert listed.specials == ["<unk>", "<s>", "</s>", "<SPECIAL_3>"]
    legacy = read_tiktoken(small_tiktoken(tmp_path / "b.json", n_special=25))
    assert legacy.specials[:20] == list(LEGACY_SPECIAL_TOKENS) and legacy.specials[20] == "<SPECIAL_20>"
    cut = read_tiktoken(small_tiktoken(tmp_path / "c.json", size=4 + 257))
    assert len(cut.ranks) == 257  # only the ranks that fit in default_vocab_size
    report = convert_tiktoken(tmp_path / "a.json", tmp_path / "out")
    assert "pad_token" not in report  # no <pad> among its special tokens
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    assert tok.convert_tokens_to_ids("ab") == 4 + 256 and tok("abc", add_special_tokens=False).input_ids == [261]


def test_merges_are_every_split_in_rank_order():
    ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256, b"bc": 257, b"abc": 258}
    assert derive_merges(ranks) == [(b"a", b"b"), (b"b", b"c"), (b"a", b"bc"), (b"ab", b"c")]


@pytest.mark.parametrize("content,fragment", [
    ("not json", "not a readable JSON file"),
    ('{"vocab": []}', "not a tiktoken-format file"),
])
def test_bad_files_are_one_line(tmp_path, content, fragment):
    p = tmp_path / "t.json"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(GraftError) as e:
        read_tiktoken(p)
    assert fragment in str(e.value) and str(p) in str(e.value) and "\n" not in str(e.value)


def test_prepare_data_tokenizes_with_the_converted_folder(tekken_dir):
    """research.data.tokenize on a byte-level folder: backend auto picks hf, Tekken's BOS / EOS / pad ids."""
    from research.config.data import TokenizeConfig
    from research.data.document import Record
    from research.data.tokenize import load_tokenizer, special_ids, tokenize

    tok = load_tokenizer(str(tekken_dir))
    special = special_ids(tok, TokenizeConfig(), str(tekken_dir))
    assert (special.bos, special.eos, special.pad) == (1, 2, 11)
    records = [Record("f.jsonl", 1, "zh", "问：", "中华人民共和国成立了。</s> too")]
    docs, stats = tokenize(records, str(tekken_dir), special, TokenizeConfig(), num_workers=1, progress=False, tok=tok)
    assert stats["backend"] == "hf" and "no tokenizer.model" in stats["backend_reason"]
    ids = docs[0].ids.tolist()
    assert ids[0] == 1 and ids[-1] == 2 and ids.count(2) == 1  # the "</s>" in the text stays text
    assert docs[0].n_masked == 1 + len(tok("问：", add_special_tokens=False).input_ids)
