"""The text and model the corpus-reading init strategies use (focus, token_distill, guarded).

`InitCorpus` reads `init.domain_text` and `init.base_text` once, encodes them with the expanded tokenizer and keeps
what strategies compute from them (`cache`), so both matrices of one model share one fastText model or one
calibration. Ids of new tokens map back to their base splits with `to_base`, so any id sequence can be fed to the
base model exactly as the base tokenizer would have cut the new pieces.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from research.errors import GraftError
from research.rejects import Rejects

log = logging.getLogger("graft.init")


def _jsonl_text(line: str) -> tuple[str | None, str | None]:
    """(text, None) for a jsonl line with text (`text`, else `source` + `target`), else (None, reason)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None, "not JSON"
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    fields = [obj.get("text")] if obj.get("text") is not None else [obj.get("source"), obj.get("target")]
    if any(v is not None and not isinstance(v, str) for v in fields):
        return None, "text field is not a string"
    text = "".join(v or "" for v in fields)
    return (text, None) if text.strip() else (None, "no text")


def read_lines(path: str, key: str, max_chars: int, rejects: Rejects | None = None) -> list[str]:
    """Documents of a .txt (one per line; blank lines are skipped) or .jsonl file (`text`, else `source` +
    `target`), up to `max_chars` characters. A jsonl line that is no JSON object with text is added to `rejects`
    (under `key`, with its line number and reason) and counted in the log line."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise GraftError(f"{key}={path!r}: not found")
    out, chars, skipped = [], 0, 0
    try:
        with open(p, encoding="utf-8", errors="strict") as f:
            for lineno, line in enumerate(f, 1):
                if p.suffix == ".jsonl":
                    if not line.strip():
                        continue
                    text, reason = _jsonl_text(line)
                    if text is None:
                        skipped += 1
                        if rejects is not None:
                            rejects.add(key, p, lineno, reason, line.rstrip("\n"))
                        continue
                else:
                    text = line
                text = text.strip()
                if not text:
                    continue
                out.append(text[: max_chars - chars])
                chars += len(out[-1])
                if chars >= max_chars:
                    break
    except UnicodeDecodeError as e:
        raise GraftError(f"{key}={path!r}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if skipped:
        log.warning("%s: skipped %d lines that are no JSON object with text (init_model's rejects.jsonl)", key,
                    skipped)
    if not out:
        raise GraftError(f"{key}={path!r}: no text")
    return out


@dataclass
class InitCorpus:
    tokenizer: object
    """The expanded tokenizer (HF)."""
    base_size: int
    splits: list
    """research.init.splits.Split of each new id, in id order."""
    domain: list[list[int]] = field(default_factory=list)
    """init.domain_text's documents, encoded with the expanded tokenizer (no special tokens)."""
    base: list[list[int]] = field(default_factory=list)
    """init.base_text's documents, encoded the same way."""
    model: object = None
    """The resized model (its body is the base model's; strategies feed it base ids only, or their own rows)."""
    cache: dict = field(default_factory=dict)
    rejects: Rejects = field(default_factory=lambda: Rejects(key="input"))
    """Lines of the texts that were skipped, with the reason (init_model writes them to rejects.jsonl)."""

    def to_base(self, ids: list[int]) -> list[int]:
        """`ids` with every new id replaced by its base split."""
        out: list[int] = []
        for i in ids:
            out.extend(self.splits[i - self.base_size].ids if i >= self.base_size else (i,))
        return out

    def bos(self) -> list[int]:
        bos = getattr(self.tokenizer, "bos_token_id", None)
        return [] if bos is None else [bos]


def load_corpus(cfg, tokenizer, base_size: int, splits: list, model) -> InitCorpus:
    """An InitCorpus with the texts `cfg`'s strategy reads (its `needs`); the others are not read."""
    from research.init.strategies import STRATEGIES

    corpus = InitCorpus(tokenizer, base_size, splits, model=model)
    needs = getattr(STRATEGIES[cfg.strategy], "needs", ())
    for attr, key in (("domain", "domain_text"), ("base", "base_text")):
        path = getattr(cfg, key)
        if path and key in needs:
            lines = read_lines(path, f"init.{key}", cfg.corpus_max_chars, corpus.rejects)
            setattr(corpus, attr, [tokenizer(t, add_special_tokens=False).input_ids for t in lines])
    return corpus
