"""Character classes of many texts at once: one table lookup per code point, counts per text with numpy.

The cleaning and scoring checks count characters by class (Han, Latin, letters, digits, ...) in every document;
a regex `findall` per class per document spent most of their time. Here the texts of a batch are concatenated,
turned into code points once, classified through a 0x110000-entry table (built once from the same regexes, so the
classes are exactly Python's), and counted per text from cumulative sums. Maximal runs of a class (Latin words)
are counted the same way, from the positions where the class starts.
"""

import re
from functools import cache

import numpy as np

HAN = 1 << 0
LATIN = 1 << 1
LETTER = 1 << 2
DIGIT = 1 << 3
SPACE = 1 << 4
PUNCT = 1 << 5
CONTROL = 1 << 6
ALNUM = 1 << 7
MOJIBAKE_LEAD = 1 << 8
MENU_CHAR = 1 << 9
SURROGATE = 1 << 10
REPLACEMENT = 1 << 11
WORD = 1 << 12
# class_counts key flag: RUN | bit counts the maximal runs of that class in a text (for LATIN: its Latin words)
RUN = 1 << 15

PATTERNS = {
    HAN: r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]",
    # ASCII and Latin-1/Extended-A/B letters, and the full-width forms Ａ-Ｚ ａ-ｚ (Chinese text writes product
    # names and acronyms in them: "ＳＯＮＹ电视"; they are letters, so left out here they counted as neither Han
    # nor Latin and made Chinese text "mixed")
    LATIN: r"[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\uff21-\uff3a\uff41-\uff5a]",
    LETTER: r"[^\W\d_]",
    # letters of scripts written in words (Latin, Greek, Cyrillic, Arabic, Devanagari, Hangul, ...): every letter
    # but Han and kana, whose single characters are morphemes or syllables
    WORD: r"[^\W\d_\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]",
    DIGIT: r"\d",
    SPACE: r"\s",
    # Ordinary prose punctuation (ASCII and CJK): not counted as symbols, so only decoration and spam are. Every
    # ASCII one has its full-width form here too (．as the decimal point of full-width numerals, ％ －／＂＇［］),
    # and the tilde ~ ～, which informal Chinese writes as a prolongation/tone mark ("屏幕无亮点~~~很完美").
    PUNCT: (r"[,.!?;:'\"()\[\]\-\u2014\u2013\u2026\u00b7\u3001\u3002\uff0c\uff01\uff1f\uff1b\uff1a"
            r"\u201c\u201d\u2018\u2019\uff08\uff09\u300a\u300b\u3008\u3009\u300c\u300d\u300e\u300f"
            r"\u3010\u3011/%\uff02\uff05\uff07\uff0d\uff0e\uff0f\uff3b\uff3d~\uff5e]"),
    CONTROL: r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]",
    ALNUM: r"[^\W_]",
    # the first character of a UTF-8 multi-byte sequence read as Latin-1/cp1252 (Â..ï)
    MOJIBAKE_LEAD: r"[\u00c2-\u00ef]",
    MENU_CHAR: r"[|｜>»/·]",
    SURROGATE: r"[\ud800-\udfff]",
    REPLACEMENT: r"\ufffd",
}
COUNTED = (HAN, LATIN, LETTER, WORD, DIGIT, SPACE, PUNCT, CONTROL, MOJIBAKE_LEAD, MENU_CHAR, SURROGATE,
           REPLACEMENT)
RUNS = (LATIN, WORD)
"""Classes whose runs class_counts also counts (under RUN | bit)."""


@cache
def table() -> np.ndarray:
    """uint16 class bits of every code point."""
    every = "".join(map(chr, range(0x110000)))
    out = np.zeros(0x110000, dtype=np.uint16)
    for bit, pattern in PATTERNS.items():
        hits = np.fromiter((m.start() for m in re.finditer(pattern, every)), dtype=np.int64)
        out[hits] |= bit
    return out


def code_points(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(uint32 code points of all texts concatenated, int64 start offsets with a final end)."""
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    # surrogatepass: a lone surrogate (possible through a JSON escape) is classified, not an exception
    cps = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return cps, offsets


def segment_sums(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per-text sums of a boolean per-code-point mask (empty texts give 0, unlike reduceat)."""
    c = np.zeros(len(mask) + 1, dtype=np.int64)
    np.cumsum(mask, out=c[1:])
    return c[offsets[1:]] - c[offsets[:-1]]


def run_starts(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Where a maximal run of True starts in each text of a per-code-point mask (a text's first position always
    starts one: runs never continue across two texts)."""
    start = mask.copy()
    start[1:] &= ~mask[:-1]
    first = offsets[:-1][offsets[:-1] < offsets[1:]]  # first position of every non-empty text
    start[first] = mask[first]
    return start


def class_counts(texts: list[str]) -> dict[int, np.ndarray]:
    """bit -> int64 count per text of the characters in that class (for each bit in COUNTED), and RUN | bit ->
    count per text of the maximal runs of that class (for each bit in RUNS: RUN | LATIN counts Latin words,
    RUN | WORD the words of every script written in words)."""
    cps, offsets = code_points(texts)
    bits = table()[cps]
    out = {bit: segment_sums((bits & bit) != 0, offsets) for bit in COUNTED}
    for bit in RUNS:
        out[RUN | bit] = segment_sums(run_starts((bits & bit) != 0, offsets), offsets)
    return out


def numeric_line_digits(texts: list[str], digits_per_letter: float = 1.0) -> np.ndarray:
    """Per text, the digits of its numeric lines: lines (ended by a newline) with more than digits_per_letter
    digits per letter, as table rows and number lists are. Digits in the other lines (numbers in a sentence, dates
    in a headline) are not counted."""
    cps, offsets = code_points(texts)
    bits = table()[cps]
    doc = np.repeat(np.arange(len(texts), dtype=np.int64), np.diff(offsets))
    first = np.zeros(len(cps), dtype=bool)  # a line starts after a newline and at a text's start
    first[1:] = cps[:-1] == 10
    first[offsets[:-1][offsets[:-1] < offsets[1:]]] = True
    line = np.cumsum(first) - 1
    digits = np.bincount(line, weights=(bits & DIGIT) != 0)
    letters = np.bincount(line, weights=(bits & LETTER) != 0)
    numeric = np.where(digits > digits_per_letter * letters, digits, 0.0)
    return np.bincount(doc[first], weights=numeric, minlength=len(texts)).astype(np.int64)


def distinct_chars(texts: list[str]) -> np.ndarray:
    """Number of distinct characters in each text."""
    cps, offsets = code_points(texts)
    doc = np.repeat(np.arange(len(texts), dtype=np.uint64), np.diff(offsets))
    keys = np.sort((doc << np.uint64(21)) | cps.astype(np.uint64))  # sort + diff: faster than np.unique here
    new = np.ones(len(keys), dtype=bool)
    new[1:] = keys[1:] != keys[:-1]
    return np.bincount((keys[new] >> np.uint64(21)).astype(np.int64), minlength=len(texts))


def _mix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def distinct_ngram_fraction(texts: list[str], n: int) -> np.ndarray:
    """Per text, 1 - distinct character n-grams / all n-grams (0 when a text has fewer than 2 n-grams).

    n-grams are compared by a 40-bit hash within each text (about m^2 / 2^41 expected collisions for m n-grams:
    a 200,000-character text shifts its fraction by ~1e-7), sorted together with the text index."""
    cps, offsets = code_points(texts)
    starts, ends = offsets[:-1], offsets[1:]
    m = np.maximum(ends - starts - n + 1, 0)
    out = np.zeros(len(texts), dtype=np.float64)
    total = len(cps) - n + 1
    if total <= 0:
        return out
    with np.errstate(over="ignore"):
        h = np.zeros(total, dtype=np.uint64)
        for j in range(n):
            h = h * np.uint64(1_000_003) + cps[j:j + total]
        h = _mix64(h) >> np.uint64(24)
    doc = np.repeat(np.arange(len(texts), dtype=np.uint64), ends - starts)[:total]
    pos = np.arange(total, dtype=np.int64)
    valid = pos + n <= ends[doc.astype(np.int64)]  # the n-gram lies inside one text
    keys = np.sort((doc[valid] << np.uint64(40)) | h[valid])
    new = np.ones(len(keys), dtype=bool)
    new[1:] = keys[1:] != keys[:-1]
    distinct = np.bincount((keys[new] >> np.uint64(40)).astype(np.int64), minlength=len(texts))
    ok = m > 1
    out[ok] = 1.0 - distinct[ok] / m[ok]
    return out
