"""research.tokenizer.continued_bpe and the byte-level script rule: the trainer's segmentation is what `tokenizers`
does with the appended merges, ties are deterministic, word plans build their word, and no merge can touch text
without a Han character."""

from collections import Counter

import pytest
from tokenizers import Tokenizer

from research.tokenizer.bytelevel import load_bytelevel_base
from research.tokenizer.bytelevel_export import save_bytelevel
from research.tokenizer.continued_bpe import Growth, base_words, char_count, learn, plan_word
from research.tokenizer.script import bytes_in_script, fragment_in_script

ZHONG = "中".encode()  # e4 b8 ad


@pytest.mark.parametrize("token,ok", [
    ("中国".encode(), True), (" 中国".encode(), True), ("，中国".encode(), True), ("中国。".encode(), True),
    ("１２月".encode(), True),                   # full-width digits beside Han
    ("中a".encode(), False), (b"ab", False), (b" ", False), ("。”".encode(), False),
    ("——".encode(), False),                      # punctuation English text also uses, without Han
    (ZHONG[:2], True),                           # e4 b8 ..: every completion (U+4E00-U+4E3F) is Han
    (ZHONG[:1], False),                          # e4 ..: U+4DC0 (a hexagram) completes it too
    (b" " + ZHONG[:2], True), (ZHONG[1:], False),  # continuation bytes alone guarantee nothing
    (ZHONG[2:] + "国".encode(), True),          # the tail of some character, then a whole Han one
    ("中".encode() + b"\x41\x80", False), (b"\xff", False),
])
def test_bytes_in_script(token, ok):
    assert bytes_in_script(token, "han") is ok
    assert bytes_in_script(token, "any") is True


def test_fragment_completions_are_ranges():
    assert fragment_in_script("中".encode()[:2], "han")
    assert not fragment_in_script(b"\xe3\x80", "han")  # U+3000-U+303F: CJK punctuation, not Han
    assert fragment_in_script("𠀀".encode()[:2], "han")  # F0 A0: U+20000-U+20FFF, extension B
    assert not fragment_in_script(b"\xf0", "han")


def test_char_count():
    assert char_count("中国".encode()) == 2 and char_count(ZHONG[1:] + "国".encode()) == 2 and char_count(b"ab") == 2


@pytest.fixture(scope="module")
def tiny(tiny_bytelevel):
    return load_bytelevel_base(tiny_bytelevel)


def news(small_inputs, n=1500):
    return (small_inputs / "zh_train.txt").read_text(encoding="utf-8").splitlines()[:n]


def test_learned_merges_segment_as_tokenizers_does(tiny, small_inputs, tmp_path):
    lines = news(small_inputs)
    g = Growth.start(tiny.token_bytes, "han", 16)
    counts = learn(g, base_words(tiny.tokenizer, lines, tiny.added), 200, 2)
    assert counts["added"] == len(g.merges) == 200 and counts["offered"] >= 200
    save_bytelevel(tiny, g, tmp_path)
    new = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for line in lines[:300]:
        enc = tiny.tokenizer.encode(line, add_special_tokens=False)
        ours = []
        for w in sorted(set(enc.word_ids)):
            ours += g.segment([i for i, k in zip(enc.ids, enc.word_ids, strict=True) if k == w])
        assert new.encode(line, add_special_tokens=False).ids == ours
    for a, b in g.merges:  # every merge passes the filter, and makes a token that did not exist before
        assert bytes_in_script(g.token_bytes[a] + g.token_bytes[b], "han")
    assert len(set(g.token_bytes[tiny.size:])) == 200 and not set(g.token_bytes[tiny.size:]) & g.base_bytes


def test_ties_go_to_the_smallest_pair_and_runs_repeat():
    token_bytes = [bytes([b]) for b in range(256)]
    x, y, z = (ord(c) for c in "xyz")
    words = Counter({(z, y): 2, (x, y): 2, (y, x): 1})
    g = Growth.start(token_bytes, "any", 16)
    learn(g, words, 3, 1)
    assert g.merges == [(x, y), (z, y), (y, x)]
    again = Growth.start(token_bytes, "any", 16)
    learn(again, Counter(dict(reversed(list(words.items())))), 3, 1)
    assert again.merges == g.merges
    stop = Growth.start(token_bytes, "any", 16)
    counts = learn(stop, words, 3, 2)
    assert len(stop.merges) == 2 and counts["stopped_below_min_pair_count"] == 1


def test_a_pair_that_would_remake_a_token_is_skipped():
    token_bytes = [bytes([b]) for b in range(256)] + [b"ab"]
    a, b, c = (ord(ch) for ch in "abc")
    g = Growth.start(token_bytes, "any", 16)
    counts = learn(g, Counter({(a, b, c): 5, (a, 256): 1}), 5, 1)  # "a"+"b" is the base token "ab"
    assert counts["skipped_in_base"] == 1 and (a, b) not in g.merges and (b, c) in g.merges


def test_plan_word_builds_the_word_and_rolls_back(tiny):
    g = Growth.start(tiny.token_bytes, "han", 16)
    ids = tiny.tokenizer.encode("人工智能", add_special_tokens=False).ids
    assert len(ids) > 4  # bytes and byte pairs: the tiny base never saw Chinese
    assert plan_word(g, ids, 2) == ("skipped_no_room", 0) and not g.merges
    reason, added = plan_word(g, ids, 100)
    assert reason is None and added == len(g.merges) == len(ids) - 1
    assert [g.token_bytes[i] for i in g.segment(ids)] == ["人工智能".encode()]
    assert plan_word(g, ids, 100) == ("skipped_duplicate", 0)
    assert plan_word(g, tiny.tokenizer.encode(" the", add_special_tokens=False).ids, 100)[0] == "skipped_in_base"
