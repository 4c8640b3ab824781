"""Heuristic cleaning: Unicode normalisation, then length, script, symbol, digit, repetition and control checks.

Every check is a counted reject reason, so the manifest and rejects.jsonl say exactly why the corpus shrank.
Language is told by script (Han vs Latin letters), which is all a Chinese/English mix needs and is fast.
"""

import re
import unicodedata

from tqdm import tqdm

from research.config.data import CleanConfig, InputConfig
from research.data.records import Record, Rejects

STEP = "clean"

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
LATIN = re.compile(r"[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]")
LETTER = re.compile(r"[^\W\d_]")
DIGIT = re.compile(r"\d")
SPACE = re.compile(r"\s")
# Ordinary prose punctuation (ASCII and CJK): not counted as symbols, so only decoration and spam are.
PUNCT = re.compile(r"[,.!?;:'\"()\[\]\-\u2014\u2013\u2026\u00b7\u3001\u3002\uff0c\uff01\uff1f\uff1b\uff1a"
                   r"\u201c\u201d\u2018\u2019\uff08\uff09\u300a\u300b\u3008\u3009\u300c\u300d\u300e\u300f"
                   r"\u3010\u3011/%]")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# UTF-8 bytes read as Latin-1/cp1252: a lead byte (Â..ï) followed by a continuation byte's character.
MOJIBAKE = re.compile("[\u00c2-\u00ef][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6"
                      "\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]")
MOJIBAKE_MIN_HITS = 3
# Navigation menus and footers: short items joined by separators ("首页 | 新闻 | 体育", "Home > News").
MENU_SEP = re.compile(r"\s[|｜>»/·]\s|[|｜]")


def normalize(text: str, form: str) -> str:
    return text if form == "none" else unicodedata.normalize(form, text)


def script_counts(text: str) -> tuple[int, int, int]:
    """(Han characters, Latin letters, all letters)."""
    return len(HAN.findall(text)), len(LATIN.findall(text)), len(LETTER.findall(text))


def detect_lang(text: str, min_fraction: float) -> str:
    """zh | en | mixed | none, from the share of Han and Latin among the letters."""
    han, latin, letters = script_counts(text)
    if letters == 0:
        return "none"
    if han / letters >= min_fraction:
        return "zh"
    if latin / letters >= min_fraction:
        return "en"
    return "mixed"


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


def dup_ngram_fraction(text: str, n: int) -> float:
    m = len(text) - n + 1
    if m <= 1:
        return 0.0
    return 1.0 - len({text[i:i + n] for i in range(m)}) / m


def check_record(rec: Record, lang: str, cfg: CleanConfig) -> tuple[str | None, str | None]:
    """Normalise rec in place; return (reason, detail) for a reject, or (None, None) to keep it."""
    if not rec.target.strip():
        return "empty_target", None
    raw = rec.text
    n_ctrl = len(CONTROL.findall(raw))
    if n_ctrl > cfg.max_control_chars:
        return "control_chars", f"{n_ctrl} control characters"
    if "\ufffd" in raw:
        return "replacement_char", None
    rec.source = normalize(rec.source, cfg.normalization)
    rec.target = normalize(rec.target, cfg.normalization)
    text = rec.text
    n = len(text)
    if n < cfg.min_chars:
        return "too_short", f"{n} chars"
    if n > cfg.max_chars:
        return "too_long", f"{n} chars"
    if len(MOJIBAKE.findall(text)) >= MOJIBAKE_MIN_HITS:
        return "mojibake", None
    seps = len(MENU_SEP.findall(text))
    if cfg.menu_min_separators and seps >= cfg.menu_min_separators and n / (seps + 1) < cfg.menu_max_item_chars:
        return "menu_boilerplate", f"{seps} separators"
    han, latin, letters = script_counts(text)
    if lang != "any":
        if letters == 0:
            return "no_letters", None
        got = "zh" if han / letters >= cfg.min_script_fraction else (
            "en" if latin / letters >= cfg.min_script_fraction else "mixed")
        if got == "mixed":
            return "mixed_language", f"han={han} latin={latin} letters={letters}"
        if got != lang:
            return "wrong_language", f"expected {lang}, found {got}"
    digits, spaces, punct = len(DIGIT.findall(text)), len(SPACE.findall(text)), len(PUNCT.findall(text))
    symbols = n - letters - digits - spaces - punct
    if symbols / n > cfg.max_symbol_ratio:
        return "symbol_ratio", f"{symbols / n:.3f}"
    if digits / n > cfg.max_digit_ratio:
        return "digit_ratio", f"{digits / n:.3f}"
    f = dup_line_fraction(text)
    if f > cfg.max_dup_line_fraction:
        return "repeated_lines", f"{f:.3f}"
    f = dup_ngram_fraction(text, cfg.dup_ngram_size)
    if f > cfg.max_dup_ngram_fraction:
        return "repeated_ngrams", f"{f:.3f}"
    return None, None


def clean(records: list[Record], langs: dict, cfg: CleanConfig, rejects: Rejects,
          progress: bool = True) -> tuple[list[Record], dict]:
    """Keep the records that pass every check; `langs` maps category -> expected language (zh | en | any)."""
    kept = []
    for rec in tqdm(records, desc="clean", unit="doc", disable=not progress, mininterval=1.0):
        reason, detail = check_record(rec, langs.get(rec.category, "any"), cfg)
        if reason is None:
            kept.append(rec)
        else:
            rejects.add_record(STEP, rec, reason, detail=detail)
    rejected = len(records) - len(kept)
    assert len(records) == len(kept) + rejected == len(kept) + rejects.count(STEP)
    return kept, {"in": len(records), "kept": len(kept), "rejected": rejected, "reasons": rejects.reasons(STEP)}


def expected_langs(inputs: list[InputConfig]) -> dict:
    """category -> expected language; a category fed by inputs of different languages accepts any."""
    out = {}
    for inp in inputs:
        out[inp.category] = inp.lang if out.get(inp.category, inp.lang) == inp.lang else "any"
    return out
