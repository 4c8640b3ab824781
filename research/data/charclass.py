"""Character classes of many texts at once: one table lookup per code point, counts per text with numpy.

The cleaning and scoring checks count characters by class (Han, Latin, letters, digits, ...) in every document;
a regex `findall` per class per document spent most of their time. Here the texts of a batch are concatenated,
turned into code points once, classified through a 0x110000-entry table (built once from the same regexes, so the
classes are exactly Python's), and counted per text from cumulative sums.
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

PATTERNS = {
    HAN: r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]",
    LATIN: r"[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]",
    LETTER: r"[^\W\d_]",
    DIGIT: r"\d",
    SPACE: r"\s",
    # Ordinary prose punctuation (ASCII and CJK): not counted as symbols, so only decoration and spam are.
    PUNCT: (r"[,.!?;:'\"()\[\]\-\u2014\u2013\u2026\u00b7\u3001\u3002\uff0c\uff01\uff1f\uff1b\uff1a"
            r"\u201c\u201d\u2018\u2019\uff08\uff09\u300a\u300b\u3008\u3009\u300c\u300d\u300e\u300f"
            r"\u3010\u3011/%]"),
    CONTROL: r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]",
    ALNUM: r"[^\W_]",
    # the first character of a UTF-8 multi-byte sequence read as Latin-1/cp1252 (Â..ï)
    MOJIBAKE_LEAD: r"[\u00c2-\u00ef]",
    MENU_CHAR: r"[|｜>»/·]",
    SURROGATE: r"[\ud800-\udfff]",
    REPLACEMENT: r"\ufffd",
}
COUNTED = (HAN, LATIN, LETTER, DIGIT, SPACE, PUNCT, CONTROL, MOJIBAKE_LEAD, MENU_CHAR, SURROGATE, REPLACEMENT)


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


def class_counts(texts: list[str]) -> dict[int, np.ndarray]:
    """bit -> int64 count per text of the characters in that class (for each bit in COUNTED)."""
    cps, offsets = code_points(texts)
    bits = table()[cps]
    return {bit: segment_sums((bits & bit) != 0, offsets) for bit in COUNTED}


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
