"""Perplexity and bits per byte on held-out text, per language: how much of the base model's knowledge of a
language survives continued pre-training (forgetting shows up as rising English bits per byte)."""

import math
from pathlib import Path

from research.errors import GraftError

# Full-window logits are (batch x window x vocab) floats: cap batch x window so memory stays near 2 GiB at 32k.
TOKENS_PER_BATCH = 16384


def read_text(path: str, max_chars: int, lang: str, key: str = "eval.heldout_texts") -> str:
    p = Path(path).expanduser()
    if not p.is_file():
        raise GraftError(f"{key}.{lang}={path!r}: not found")
    try:
        with open(p, encoding="utf-8") as f:
            text = f.read(max_chars)
    except UnicodeDecodeError as e:
        raise GraftError(f"{key}.{lang}={path!r}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise GraftError(f"{key}.{lang}={path!r}: cannot read ({e.strerror or type(e).__name__})") from None
    if not text.strip():
        raise GraftError(f"{key}.{lang}={path!r}: empty")
    return text


def windows(tokenizer, text: str, window: int) -> list[list[int]]:
    """Non-overlapping windows that together predict every token of the text: each starts with BOS, which is
    context only. (A tokenizer without BOS leaves the first token of each window unpredicted.)"""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    bos = tokenizer.bos_token_id
    step = window - 1 if bos is not None else window
    return [([bos] if bos is not None else []) + ids[i:i + step] for i in range(0, len(ids), step)]


def score(scorer, wins: list[list[int]]) -> tuple[float, int]:
    """(summed negative log-likelihood in nats, predicted tokens) over these windows."""
    if not wins:
        return 0.0, 0
    from research.eval.inference import Scorer

    width = max(len(w) for w in wins)
    sub = Scorer(scorer.model, scorer.tokenizer, max(1, min(scorer.batch_size, TOKENS_PER_BATCH // width)),
                 scorer.progress)
    nll = sub.window_nll(wins)
    return float(sum(nll)), sum(len(w) - 1 for w in wins)


def summarize(nll: float, tokens: int, text: str) -> dict:
    nbytes = len(text.encode("utf-8"))
    return {
        "tokens": tokens,
        "bytes": nbytes,
        "chars": len(text),
        "loss_per_token": nll / max(1, tokens),
        "perplexity": math.exp(nll / max(1, tokens)) if nll / max(1, tokens) < 700 else math.inf,  # no OverflowError
        "bits_per_byte": nll / math.log(2) / max(1, nbytes),
        "bytes_per_token": nbytes / max(1, tokens),
    }
