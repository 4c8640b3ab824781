"""Heuristic cleaning: Unicode normalisation, then length, script, symbol, digit, repetition and control checks.

Every check is a counted reject reason, so the manifest and rejects.jsonl say exactly why the corpus shrank.
Language is told by script (Han vs Latin letters), which is all a Chinese/English mix needs and is fast.

Checks that compare amounts of text across scripts count a Han character and a Latin word alike, as one unit of
text (a Han character is about a morpheme, a Latin letter a fraction of a word): script shares are shares of
units, and the repeated n-gram window spans about as many words in English as in Chinese. See docs/cleaning.md.
"""

import re
import unicodedata

from tqdm import tqdm

from research.config.data import CleanConfig, InputConfig
from research.data import charclass as cc
from research.data.document import Record
from research.rejects import Rejects

STEP = "clean"

# UTF-8 bytes read as Latin-1/cp1252: a lead byte (Â..ï) followed by a continuation byte's character.
MOJIBAKE = re.compile("[\u00c2-\u00ef][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6"
                      "\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]")
MOJIBAKE_MIN_HITS = 3
# Navigation menus and footers: short items joined by separators ("首页 | 新闻 | 体育", "Home > News").
MENU_SEP = re.compile(r"\s[|｜>»/·]\s|[|｜]")
BATCH = 2048
# reasons decided before normalisation: their rejects log the text as read
RAW_REASONS = ("empty_target", "control_chars", "replacement_char", "lone_surrogate")
# digit_ratio counts only the digits of numeric lines, lines with more than this many digits per letter (table
# rows, number lists, phone spam). A headline with full-width dates ("明天气象预报（１月２日２０时—３日２０时）":
# 7 digits in 21 characters, 11 letters) has a third of its characters in digits, because a Han character is a
# word and "２０" two digits, yet it is prose (CleanConfig has no key for this yet)
DIGITS_PER_LETTER = 1.0
# Text written in Latin words (more Latin words than Han characters) looks for repeated n-grams of
# dup_ngram_size * this characters: 10 characters are ~6 words of Chinese but under 2 of English, where names and
# phrases ("United States Naval Academy", a title the passage repeats) recur in any text
WORD_NGRAM_SCALE = 3


def normalize(text: str, form: str) -> str:
    return text if form == "none" else unicodedata.normalize(form, text)


def dup_line_fraction(text: str) -> float:
    lines = [ln.strip() for ln in text.split("\n")]
    if len(lines) < 2:
        return 0.0
    seen, dup, total = set(), 0, 0
    for ln in lines:
        total += len(ln)
        if ln and ln in seen:
            dup += len(ln)
        seen.add(ln)
    return dup / total if total else 0.0


def check_record(rec: Record, lang: str, cfg: CleanConfig) -> tuple[str | None, str | None]:
    """Normalise rec in place; return (reason, detail) for a reject, or (None, None) to keep it."""
    return check_batch([rec], [lang], cfg)[0]


def check_batch(recs: list[Record], langs: list[str], cfg: CleanConfig) -> list[tuple[str | None, str | None]]:
    """check_record for many records: character classes and n-gram repetition are counted for all at once.

    Checks run in a fixed order and the first failing one is the reason. Control characters and U+FFFD are
    counted on the normalised text: NFC and NFKC never create or remove them (checked over every code point)."""
    src = [normalize(r.source, cfg.normalization) for r in recs]
    tgt = [normalize(r.target, cfg.normalization) for r in recs]
    texts = [s + t for s, t in zip(src, tgt, strict=True)]
    counts = cc.class_counts(texts)
    # numeric lines are counted only where the digits could be over max_digit_ratio
    many = [i for i, (d, t) in enumerate(zip(counts[cc.DIGIT].tolist(), texts, strict=True))
            if d > cfg.max_digit_ratio * len(t)]
    numeric = dict(zip(many, cc.numeric_line_digits([texts[i] for i in many], DIGITS_PER_LETTER).tolist(),
                       strict=True))
    out: list[tuple[str | None, str | None]] = [(None, None)] * len(recs)
    survivors = []
    for i, (rec, lang, text) in enumerate(zip(recs, langs, texts, strict=True)):
        c = {b: int(v[i]) for b, v in counts.items()}
        reason = _check_one(rec, lang, text, c, numeric.get(i, 0), cfg)
        if reason == ("", ""):
            survivors.append(i)
        else:
            out[i] = reason
        if reason[0] not in RAW_REASONS:
            rec.source, rec.target = src[i], tgt[i]
    # only records that pass every other check need the n-gram count; words -> the longer window
    words = counts[cc.RUN | cc.LATIN] > counts[cc.HAN]
    for n, group in ((cfg.dup_ngram_size, [i for i in survivors if not words[i]]),
                     (cfg.dup_ngram_size * WORD_NGRAM_SCALE, [i for i in survivors if words[i]])):
        if group:
            ngram = cc.distinct_ngram_fraction([texts[i] for i in group], n)
            for i, f in zip(group, ngram.tolist(), strict=True):
                out[i] = ("repeated_ngrams", f"{f:.3f}") if f > cfg.max_dup_ngram_fraction else (None, None)
    return out


def script_units(c: dict[int, int]) -> tuple[int, int, int]:
    """(Han units, Latin units, all units) of one text's class counts: a Han character, a Latin word (a run of
    Latin letters), a word of another script written in words, and a kana are one unit each."""
    return c[cc.HAN], c[cc.RUN | cc.LATIN], c[cc.LETTER] - c[cc.WORD] + c[cc.RUN | cc.WORD]


def _check_one(rec: Record, lang: str, text: str, c: dict[int, int], numeric_digits: int,
               cfg: CleanConfig) -> tuple[str | None, str | None]:
    """Every check but repeated n-grams; ("", "") when all pass. numeric_digits: digits in numeric lines."""
    if not rec.target.strip():
        return "empty_target", None
    if c[cc.CONTROL] > cfg.max_control_chars:
        return "control_chars", f"{c[cc.CONTROL]} control characters"
    if c[cc.REPLACEMENT]:
        return "replacement_char", None
    if c[cc.SURROGATE]:  # only through a JSON escape; no tokenizer can encode it
        return "lone_surrogate", None
    n = len(text)
    if n < cfg.min_chars:
        return "too_short", f"{n} chars"
    if n > cfg.max_chars:
        return "too_long", f"{n} chars"
    if c[cc.MOJIBAKE_LEAD] >= MOJIBAKE_MIN_HITS and len(MOJIBAKE.findall(text)) >= MOJIBAKE_MIN_HITS:
        return "mojibake", None
    seps = len(MENU_SEP.findall(text)) if c[cc.MENU_CHAR] else 0
    if cfg.menu_min_separators and seps >= cfg.menu_min_separators and n / (seps + 1) < cfg.menu_max_item_chars:
        return "menu_boilerplate", f"{seps} separators"
    letters = c[cc.LETTER]
    if lang != "any":
        if letters == 0:
            return "no_letters", None
        # shares of units, not letters: "装XP很快" is Chinese with one English word, not 2 Latin letters in 6
        han, words, units = script_units(c)
        got = "zh" if han / units >= cfg.min_script_fraction else (
            "en" if words / units >= cfg.min_script_fraction else "mixed")
        if got == "mixed":
            return "mixed_language", f"han={han} latin_words={words} units={units}"
        if got != lang:
            return "wrong_language", f"expected {lang}, found {got}"
    digits, spaces, punct = c[cc.DIGIT], c[cc.SPACE], c[cc.PUNCT]
    symbols = n - letters - digits - spaces - punct
    if symbols / n > cfg.max_symbol_ratio:
        return "symbol_ratio", f"{symbols / n:.3f}"
    if numeric_digits / n > cfg.max_digit_ratio:  # digits in prose lines do not count
        return "digit_ratio", f"{numeric_digits / n:.3f} ({numeric_digits} of {digits} digits in numeric lines)"
    f = dup_line_fraction(text)
    if f > cfg.max_dup_line_fraction:
        return "repeated_lines", f"{f:.3f}"
    return "", ""


def clean(records: list[Record], langs: dict, cfg: CleanConfig, rejects: Rejects,
          progress: bool = True) -> tuple[list[Record], dict]:
    """Keep the records that pass every check; `langs` maps category -> expected language (zh | en | any)."""
    kept = []
    bar = tqdm(total=len(records), desc="clean", unit="doc", disable=not progress, mininterval=1.0)
    for b in range(0, len(records), BATCH):
        batch = records[b:b + BATCH]
        verdicts = check_batch(batch, [langs.get(r.category, "any") for r in batch], cfg)
        for rec, (reason, detail) in zip(batch, verdicts, strict=True):
            if reason is None:
                kept.append(rec)
            else:  # a record rejected before normalisation is logged as read
                rejects.add_record(STEP, rec, reason, detail=detail)
        bar.update(len(batch))
    bar.close()
    rejected = len(records) - len(kept)
    assert len(records) == len(kept) + rejected == len(kept) + rejects.count(STEP)
    return kept, {"in": len(records), "kept": len(kept), "rejected": rejected, "reasons": rejects.reasons(STEP)}


def expected_langs(inputs: list[InputConfig]) -> dict:
    """category -> expected language; a category fed by inputs of different languages accepts any."""
    out = {}
    for inp in inputs:
        out[inp.category] = inp.lang if out.get(inp.category, inp.lang) == inp.lang else "any"
    return out
