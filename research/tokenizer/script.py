"""Which pieces belong to the target script. Filtering by script keeps English and numbers unchanged.

A trained candidate model brings pieces with digits and Latin letters ("▁2", "199"); appended with top
merge priority they would change how English and numbers encode. A piece is kept for `han` when it has at
least one Han character and every other character is Han or CJK / full-width punctuation (with an optional
leading "▁"), so no new merge can ever apply to text without Han characters. Single full-width
characters (full-width digits and letters, common in Chinese news) are kept too: a single-character piece
is never the result of a merge, so it only replaces that character's byte-fallback pieces.
"""

import functools
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


# ---- byte-level BPE: the same rule over the bytes a merge produces -------------------------------------------

def _utf8_length(lead: int) -> int:
    """Bytes in the character that starts with byte `lead`: 1-4, 0 for a continuation byte, -1 if never valid."""
    if lead < 0x80:
        return 1
    if lead < 0xC0:
        return 0
    if lead < 0xC2 or lead > 0xF4:
        return -1
    return 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


@functools.lru_cache(maxsize=1 << 16)
def char_allowed(ch: str, script: str) -> bool:
    """A complete character a new `script` token may hold: for han, Han, CJK punctuation or a full-width form
    (the characters `is_cjk` names); a new token needs a Han character besides (`bytes_in_script`)."""
    return script == "any" or is_cjk(ch)


@functools.lru_cache(maxsize=1 << 16)
def char_in_script(ch: str, script: str) -> bool:
    """A character of the script itself: a line holding none is text the script filter keeps unchanged."""
    return script == "any" or is_han(ch)


@functools.lru_cache(maxsize=65536)
def fragment_in_script(fragment: bytes, script: str) -> bool:
    """Every character that can complete the leading bytes `fragment` (a lead byte and 0-2 continuation bytes) is
    in the script. The completions are a contiguous code point range; surrogates are not characters."""
    if script == "any":
        return True
    n = _utf8_length(fragment[0])
    if n < 2 or len(fragment) >= n or any(not 0x80 <= b <= 0xBF for b in fragment[1:]):
        return False
    free = 6 * (n - len(fragment))
    prefix = fragment[0] & (0x7F >> n)
    for b in fragment[1:]:
        prefix = (prefix << 6) | (b & 0x3F)
    lo, hi = prefix << free, (prefix << free) | ((1 << free) - 1)
    lo = max(lo, (0x80, 0x800, 0x10000)[n - 2])  # overlong encodings are not characters
    hi = min(hi, 0x10FFFF)
    if lo > hi:
        return False
    return all(char_in_script(chr(cp), script) for cp in range(lo, hi + 1) if not 0xD800 <= cp <= 0xDFFF)


@functools.lru_cache(maxsize=1 << 20)
def bytes_in_script(token: bytes, script: str) -> bool:
    """Whether a new byte-level token (the bytes a new merge produces) keeps text without the script unchanged:
    any text it can apply to must contain a character of the script.

    Bytes that continue a character begun before the token are skipped; then every complete character must be
    allowed (`char_allowed`; a leading space is allowed too), and the token must hold a complete character of the
    script or end in a lead-byte fragment all of whose completions are in the script."""
    if script == "any":
        return True
    try:  # the common case, whole characters: checked at C speed but for one cached look-up per character
        text = token.decode("utf-8")
    except UnicodeDecodeError:
        return _fragment_bytes_in_script(token, script)
    body = text[1:] if text.startswith(" ") else text
    return all(char_allowed(c, script) for c in body) and any(char_in_script(c, script) for c in body)


def _fragment_bytes_in_script(token: bytes, script: str) -> bool:
    """`bytes_in_script` for bytes that do not decode: the walk over characters and fragments."""
    i = 0
    while i < len(token) and _utf8_length(token[i]) == 0:
        i += 1
    if i > 3:
        return False
    if i == 0 and token[:1] == b" ":
        i = 1
    found = False
    while i < len(token):
        n = _utf8_length(token[i])
        if n <= 0:
            return False
        if i + n > len(token):
            if any(_utf8_length(b) != 0 for b in token[i + 1:]):
                return False
            return found or fragment_in_script(token[i:], script)
        try:
            ch = token[i:i + n].decode("utf-8")
        except UnicodeDecodeError:
            return False
        if not char_allowed(ch, script):
            return False
        found = found or char_in_script(ch, script)
        i += n
    return found
