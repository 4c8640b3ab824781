"""Tokens per character on held-out text, base vs expanded, and slow = fast = SentencePiece agreement."""

from pathlib import Path

import sentencepiece as spm

from research.errors import GraftError
from research.tokenizer.script import is_cjk


def read_eval_lines(path: str, max_chars: int, key: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise GraftError(f"{key}={path!r}: no such file")
    lines, total = [], 0
    with p.open("r", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            lines.append(line)
            total += len(line)
            if total >= max_chars:
                break
    if not lines:
        raise GraftError(f"{key}={path!r}: no text")
    return lines


def sp_from_bytes(model: bytes) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_proto=model)


def compression_report(base: spm.SentencePieceProcessor, expanded: spm.SentencePieceProcessor,
                       texts: dict[str, list[str]]) -> dict:
    report = {}
    for lang, lines in texts.items():
        chars = sum(len(line) for line in lines)
        b = sum(len(ids) for ids in base.encode(lines))
        e = sum(len(ids) for ids in expanded.encode(lines))
        report[lang] = {
            "lines": len(lines), "chars": chars, "base_tokens": b, "expanded_tokens": e,
            "base_tokens_per_char": round(b / chars, 4), "expanded_tokens_per_char": round(e / chars, 4),
            "ratio": round(e / b, 4),
        }
    return report


def consistency_report(sp: spm.SentencePieceProcessor, slow, fast, lines: list[str]) -> dict:
    """How many lines the slow and fast HF tokenizers encode differently from SentencePiece."""
    slow_diff = fast_diff = 0
    examples = []
    for line in lines:
        ref = sp.encode(line)
        s = slow.encode(line, add_special_tokens=False)
        f = fast.encode(line, add_special_tokens=False)
        slow_diff += s != ref
        fast_diff += f != ref
        if (s != ref or f != ref) and len(examples) < 3:
            examples.append(line[:80])
    return {"lines": len(lines), "slow_differs": slow_diff, "fast_differs": fast_diff, "examples": examples}


def unchanged_lines(base: spm.SentencePieceProcessor, expanded: spm.SentencePieceProcessor,
                    texts: dict[str, list[str]]) -> dict:
    """Lines encoded to the same ids by both, overall and among lines with no CJK character.

    The second count is the guarantee script filtering gives: text without Han, CJK punctuation or
    full-width characters (English, numbers, code) encodes exactly as before; a Wikipedia line quoting a
    Chinese name may change.
    """
    out = {}
    for lang, lines in texts.items():
        same = [a == b for a, b in zip(base.encode(lines), expanded.encode(lines), strict=False)]
        no_cjk = [s for s, line in zip(same, lines, strict=False) if not any(is_cjk(c) for c in line)]
        out[lang] = {"lines": len(lines), "unchanged": sum(same), "lines_without_cjk": len(no_cjk),
                     "unchanged_without_cjk": sum(no_cjk)}
    return out
