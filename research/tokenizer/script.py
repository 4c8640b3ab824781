"""Which pieces belong to the target script. Filtering by script keeps English and numbers unchanged.

A trained candidate model brings pieces with digits and Latin letters ("▁2", "199"); appended with top
merge priority they would change how English and numbers encode. A piece is kept for `han` when it has at
least one Han character and every other character is Han or CJK / full-width punctuation (with an optional
leading "▁"), so no new merge can ever apply to text without Han characters. Single full-width
characters (full-width digits and letters, common in Chinese news) are kept too: a single-character piece
is never the result of a merge, so it only replaces that character's byte-fallback pieces.
"""

import re
import unicodedata

_HAN_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2A6DF), (0x2A700, 0x2EBEF),
               (0x2F800, 0x2FA1F), (0x30000, 0x3134F))
_CJK_PUNCT_RANGES = ((0x3000, 0x303F), (0xFF01, 0xFF0F), (0xFF1A, 0xFF20), (0xFF3B, 0xFF40), (0xFF5B, 0xFF65),
                     (0xFE30, 0xFE4F))
_SHARED_PUNCT = set("—…“”‘’·")  # also used in English text: allowed only beside Han


def is_han(ch: str) -> bool:
    o = ord(ch)
    return any(a <= o <= b for a, b in _HAN_RANGES)


def is_cjk_punct(ch: str) -> bool:
    o = ord(ch)
    return ch in _SHARED_PUNCT or any(a <= o <= b for a, b in _CJK_PUNCT_RANGES)


def _char_class(ranges, extra: str = "") -> str:
    return "[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in ranges) + "".join(re.escape(c) for c in sorted(extra)) + "]"


_HAN_RE = re.compile(_char_class(_HAN_RANGES))
_HAN_OR_PUNCT_RE = re.compile(_char_class(_HAN_RANGES + _CJK_PUNCT_RANGES, "".join(_SHARED_PUNCT)) + "+")


def in_script(piece: str, script: str) -> bool:
    """(han) At least one Han character, every other one Han or CJK punctuation, an optional leading "▁"; or a
    single full-width character. Regular expressions built from the same ranges as `is_han` / `is_cjk_punct`."""
    if script == "any":
        return True
    body = piece[1:] if piece.startswith("▁") else piece
    if not body:
        return False
    if len(body) == 1 and 0xFF01 <= ord(body) <= 0xFF5E:
        return True
    return _HAN_OR_PUNCT_RE.fullmatch(body) is not None and _HAN_RE.search(body) is not None


def invalid_reason(piece: str) -> str | None:
    """Why a candidate can never be a piece: empty, whitespace, or control/format characters."""
    if not piece:
        return "empty"
    if not piece.replace("▁", "").strip() or any(c.isspace() for c in piece):
        return "whitespace"
    if any(unicodedata.category(c).startswith("C") for c in piece):
        return "control_character"
    return None


def is_cjk(ch: str) -> bool:
    """A character new `han` pieces can touch: Han, CJK punctuation or a full-width form."""
    return is_han(ch) or is_cjk_punct(ch) or 0xFF01 <= ord(ch) <= 0xFF5E
