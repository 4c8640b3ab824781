import json
import re

import pytest

from research.config.data import CleanConfig, InputConfig
from research.data import charclass as cc
from research.data.clean import (
    check_batch,
    check_record,
    clean,
    expected_langs,
    normalize,
)
from research.data.document import Record
from research.rejects import Rejects

# Per-record reference implementations (regexes and sets, one text at a time) of what check_batch and
# research/data/charclass.py count for many records at once.


def detect_lang(text: str, min_fraction: float) -> str:
    """zh | en | mixed | none, from the share of Han and Latin among the letters (regexes, one text)."""
    han, latin, letters = (len(re.findall(cc.PATTERNS[bit], text)) for bit in (cc.HAN, cc.LATIN, cc.LETTER))
    if letters == 0:
        return "none"
    if han / letters >= min_fraction:
        return "zh"
    if latin / letters >= min_fraction:
        return "en"
    return "mixed"


def dup_ngram_fraction(text: str, n: int) -> float:
    """1 - distinct character n-grams / all n-grams of one text, by a set of strings."""
    m = len(text) - n + 1
    if m <= 1:
        return 0.0
    return 1.0 - len({text[i:i + n] for i in range(m)}) / m


ZH = "中国人民银行今天宣布，从下月起下调金融机构人民币存款准备金率，以保持流动性合理充裕。"
EN = "The committee met on Tuesday to discuss the budget for the coming year and approved it."


def _rec(target, source="", cat="c"):
    return Record("f", 1, cat, source, target)


REASONS = [
    ("   ", "zh", "empty_target"),
    ("好评", "zh", "too_short"),
    (ZH[:20] + "\x07" + ZH, "zh", "control_chars"),
    (ZH + "\ufffd", "zh", "replacement_char"),
    (ZH.encode("utf-8").decode("cp1252", errors="ignore"), "zh", "mojibake"),
    (EN, "zh", "wrong_language"),
    (ZH, "en", "wrong_language"),
    (ZH[:30] + " " + EN[:40], "zh", "mixed_language"),
    ("★★★★★$$$$$#####@@@@@~~~~~" * 3 + "好", "zh", "symbol_ratio"),
    ("电话 13800138000 13900139000 13700137000 号码", "zh", "digit_ratio"),
    ("首页 | 新闻 | 体育 | 娱乐 | 财经 | 登录", "zh", "menu_boilerplate"),
    ("点击这里订阅我们的新闻\n" * 6 + ZH, "zh", "repeated_lines"),
    ("好好学习天天向上" * 10, "zh", "repeated_ngrams"),
    ("1234567890 .,;", "zh", "no_letters"),
]


@pytest.mark.parametrize("text,lang,reason", REASONS)
def test_each_check_has_its_reason(text, lang, reason):
    assert check_record(_rec(text), lang, CleanConfig())[0] == reason


def test_good_text_passes_and_is_normalised():
    r = _rec("１９９８年，" + ZH)
    assert check_record(r, "zh", CleanConfig(normalization="NFKC")) == (None, None)
    assert r.target.startswith("1998年,")  # NFKC folds full-width digits and punctuation
    for form in ("NFC", "none"):
        r = _rec("１９９８年，" + ZH)
        check_record(r, "zh", CleanConfig(normalization=form))
        assert r.target.startswith("１９９８年，")
    assert normalize("ｅ", "NFC") == "ｅ" and normalize("ｅ", "NFKC") == "e" and normalize("e\u0301", "NFC") == "é"
    assert check_record(_rec(EN), "en", CleanConfig()) == (None, None)
    assert check_record(_rec(EN + ZH), "any", CleanConfig())[0] is None


def test_lang_and_repetition_helpers():
    assert detect_lang(ZH, 0.6) == "zh" and detect_lang(EN, 0.6) == "en"
    assert detect_lang(ZH[:30] + EN[:40], 0.6) == "mixed" and detect_lang("123", 0.6) == "none"
    assert dup_ngram_fraction("abcdefghij" * 5, 10) == pytest.approx(1 - 10 / 41) and dup_ngram_fraction(ZH, 10) == 0.0
    assert expected_langs([InputConfig(path="a", category="x", lang="zh"),
                           InputConfig(path="b", category="x", lang="en")]) == {"x": "any"}


def test_counts_add_up():
    recs = [_rec(ZH), _rec("好"), _rec(EN, cat="e"), _rec(ZH, cat="e")]
    rejects = Rejects()
    kept, stats = clean(recs, {"c": "zh", "e": "en"}, CleanConfig(), rejects, progress=False)
    assert [r.target for r in kept] == [ZH, EN]
    assert stats["in"] == stats["kept"] + stats["rejected"] == 4
    assert stats["reasons"] == {"too_short": 1, "wrong_language": 1}
    assert [(r["step"], r["reason"]) for r in rejects.rows] == [("clean", "too_short"), ("clean", "wrong_language")]


CASES = ["", "a", ZH, EN, ZH + EN, "Ａｂｃ１２３ 　\t\n", "𠀀𠀁 astral Han", "x\x00y\x85z\ufffd", "Ã©Ã¨Ã´ mojibake",
         "首页 | 新闻 > 体育 » 娱乐 / 财经 · 登录", "_under_score_ 3.14% “quoted”（括号）", "好好学习天天向上" * 10]


def test_batch_counts_equal_the_regexes():
    counts = cc.class_counts(CASES)
    for i, text in enumerate(CASES):
        for bit in cc.COUNTED:
            assert counts[bit][i] == len(re.findall(cc.PATTERNS[bit], text)), (text, bit)
        assert cc.distinct_ngram_fraction(CASES, 10)[i] == pytest.approx(dup_ngram_fraction(text, 10), abs=1e-12)
        assert cc.distinct_chars(CASES)[i] == len(set(text))


def test_a_batch_gives_each_record_its_own_reason():
    cases = [(t, lang) for t, lang, _ in REASONS] + [(ZH, "zh"), (EN, "en")]
    alone = [check_record(_rec(t), lang, CleanConfig()) for t, lang in cases]
    together = check_batch([_rec(t) for t, _ in cases], [lang for _, lang in cases], CleanConfig())
    assert together == alone and alone[-2:] == [(None, None), (None, None)]


def test_lone_surrogate_is_rejected():
    assert check_record(_rec(ZH + json.loads('"\\ud800"')), "zh", CleanConfig())[0] == "lone_surrogate"
