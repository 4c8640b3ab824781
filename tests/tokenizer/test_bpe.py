"""The BPE model used for reachability agrees with SentencePiece itself on real text."""

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

from research.tokenizer.bpe import bpe_split, intermediates_for, is_reachable
from research.tokenizer.spm_model import BYTE, NORMAL, lowest_ordinary_score, merge_scores


def _no_prefix(proto):
    p = pb.ModelProto()
    p.CopyFrom(proto)
    p.normalizer_spec.add_dummy_prefix = False
    return spm.SentencePieceProcessor(model_proto=p.SerializeToString())


def _with_bytes(symbols, vocab):
    out = []
    for s in symbols:
        out += [s] if s in vocab else [f"<0x{b:02X}>" for b in s.encode("utf-8")]
    return out


def test_bpe_split_matches_sentencepiece_on_real_text(small_tokenizer, small_inputs):
    proto = small_tokenizer["proto"]
    sp = _no_prefix(proto)
    scores = merge_scores(proto)
    lines = (small_inputs / "zh_heldout.txt").read_text(encoding="utf-8").splitlines()[:150]
    lines += (small_inputs / "en.txt").read_text(encoding="utf-8").splitlines()[:50]
    checked = 0
    for line in lines:
        # SentencePiece splits on whitespace first (pieces never cross a "▁" boundary except as a prefix).
        for word in line.replace(" ", "\n▁").split("\n"):
            if not word:
                continue
            expected = sp.encode(word, out_type=str)
            assert _with_bytes(bpe_split(word, scores), scores) == expected, word
            checked += 1
    assert checked > 500


def test_unreachable_word_needs_its_halves():
    base = {"人": -1.0, "工": -1.0, "智": -1.0, "能": -1.0}
    scores = dict(base, 人工智能=-10.0)
    assert bpe_split("人工智能", scores) == ["人", "工", "智", "能"]
    assert not is_reachable("人工智能", scores)
    counter = iter(range(-20, -100, -1))
    plan = intermediates_for("人工智能", dict(base), lambda: float(next(counter)))
    assert plan == ["人工", "智能"]
    fixed = dict(base, 人工=-20.0, 智能=-21.0, 人工智能=-22.0)
    assert bpe_split("人工智能", fixed) == ["人工智能"]


def test_competing_merge_is_worked_around():
    # "工智" merges first and blocks "人工" + "智能"; the plan must still reach the word.
    base = {c: -1.0 for c in "人工智能"} | {"工智": -2.0}
    counter = iter(range(-20, -100, -1))
    plan = intermediates_for("人工智能", dict(base), lambda: float(next(counter)))
    assert plan is not None
    trial = dict(base)
    for p in plan + ["人工智能"]:
        trial[p] = float(next(counter))
    assert bpe_split("人工智能", trial) == ["人工智能"]


def test_base_model_facts(small_tokenizer):
    base = small_tokenizer["base"]
    assert len(base.pieces) == 32000
    assert lowest_ordinary_score(base) == -31740.0
    assert sum(p.type == BYTE for p in base.pieces) == 256
    assert all(p.type == NORMAL for p in small_tokenizer["proto"].pieces[32000:])


def test_missing_characters_are_added_first():
    base = {"人": -1.0, "工": -1.0}
    counter = iter(range(-20, -100, -1))
    plan = intermediates_for("人工智能", dict(base), lambda: float(next(counter)))
    assert plan[:2] == ["智", "能"]
    assert not is_reachable("智能", {"智": -1.0, "智能": -2.0})
