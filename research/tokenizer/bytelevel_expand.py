"""Expand a byte-level BPE base to an exact size by continued BPE, source by source.

`check_sources` does what can fail up front, in seconds: a target below the base size, a source kind that does not
fit a byte-level base (train_sp), a missing or unreadable file, and a target the sources cannot reach (an upper
bound per source: `train_bpe` learns at most `vocab_size` merges, each one new token; a word list's distinct words
that pass the text filters can each bring at most as many new tokens as their bytes less one). `expand` then takes
the sources in order until the target: `train_bpe` learns merges over the base's segmentation of its text
(research/tokenizer/continued_bpe.py: `learn`), and each `wordlist` / `pieces_jsonl` word becomes the merges that
build it from its segmentation (`plan_word`; its intermediate tokens counted as `intermediates_added`).
"""

import itertools
import logging
import tempfile
from collections import Counter
from pathlib import Path

from research.config.tokenizer import TokenizerConfig
from research.errors import GraftError
from research.tokenizer import sources
from research.tokenizer.bytelevel import ByteLevelBase
from research.tokenizer.continued_bpe import Growth, base_words, learn, plan_word
from research.tokenizer.expand import Reach, unreachable  # the same record and error for both kinds of base
from research.tokenizer.script import in_script, invalid_reason

log = logging.getLogger(__name__)
WORD_BATCH = 4096
"""Candidate words segmented by the base per `encode_batch` call."""





def text_reason(word: str, cfg: TokenizerConfig) -> str | None:
    """Why a candidate word is skipped before it is segmented (the filters that do not depend on order)."""
    reason = invalid_reason(word)
    if reason:
        return f"rejected_{reason}"
    if len(word) > cfg.max_piece_chars:
        return "skipped_too_long"
    if not in_script(word, cfg.script):
        return "skipped_script"
    return None


def words_bound(words, cfg: TokenizerConfig) -> int:
    """An upper bound on the new tokens these words can bring: per distinct word passing `text_reason`, one merge
    (one new token) per byte after the first."""
    return sum(len(w.encode("utf-8")) - 1 for w in dict.fromkeys(words) if text_reason(w, cfg) is None)


def one_pretoken(base: ByteLevelBase):
    """text -> whether the base's normaliser leaves it as it is and its pre-tokenizer keeps it whole."""
    norm, pre = base.tokenizer.normalizer, base.tokenizer.pre_tokenizer

    def alone(text: str) -> bool:
        return (norm is None or norm.normalize_str(text) == text) and len(pre.pre_tokenize_str(text)) == 1

    return alone


def check_sources(base: ByteLevelBase, cfg: TokenizerConfig) -> Reach:
    """The one-line GraftErrors that need no slow work (module docstring)."""
    if cfg.final_size < base.size:
        raise GraftError(f"tokenizer.target_size={cfg.target_size}: smaller than the base vocabulary "
                         f"({base.size} tokens)")
    for i, src in enumerate(cfg.sources):
        sources.check_fits(src.kind, "bytelevel", f"tokenizer.sources[{i}]", cfg.base_path)
        for path in src.paths:
            sources._readable(path, sources.source_key(cfg, i))
    reach = Reach(needed=cfg.final_size - base.size)
    total = 0
    for i, src in enumerate(cfg.sources):
        if total >= reach.needed:
            break
        if src.kind in sources.BOUNDS:
            bound = sources.BOUNDS[src.kind](src)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                reach.candidates[i] = list(sources.source_items(cfg, i, Path(tmp)))
            bound = words_bound(reach.candidates[i], cfg)
        reach.bounds[i] = min(bound, src.max_pieces) if src.max_pieces else bound
        total += reach.bounds[i]
    if total < reach.needed:
        raise unreachable(cfg, reach, total, base.size, "tokens")
    return reach


def expand(base: ByteLevelBase, cfg: TokenizerConfig, reach: Reach, workdir: Path) -> tuple[Growth, dict]:
    """The new merges and the report: sizes and, per source, what it offered, added and skipped (by reason)."""
    growth = Growth.start(base.token_bytes, cfg.script, cfg.max_piece_chars, one_pretoken(base))
    target = cfg.final_size - base.size
    per_source = []
    for i, src in enumerate(cfg.sources):
        room = target - len(growth.merges)
        row = {"kind": src.kind, "paths": list(src.paths)}
        if room <= 0:
            per_source.append({**row, "used": False})
            continue
        limit = min(room, src.max_pieces) if src.max_pieces else room
        before = len(growth.merges)
        if src.kind in sources.TEXT_KINDS:
            counts = from_text(base, growth, cfg, i, workdir, limit)
        else:
            counts = from_words(base, growth, cfg, i, reach.candidates.get(i), workdir, limit)
        counts["new_tokens"] = len(growth.merges) - before
        per_source.append({**row, "used": True, **dict(sorted(counts.items()))})
    short = target - len(growth.merges)
    if short > 0:
        raise GraftError(f"tokenizer.target_size={cfg.target_size}: the sources gave only {len(growth.merges)} "
                         f"usable new tokens, {short} short of the target; add a source or raise "
                         "sources[].vocab_size")
    report = {"base_format": "bytelevel", "base_path": base.source, "base_size": base.size,
              "base_merges": base.merges, "final_size": base.size + len(growth.merges),
              "new_pieces": len(growth.merges), "new_merges": len(growth.merges), "script": cfg.script,
              "sources": per_source}
    return growth, report


def from_text(base: ByteLevelBase, growth: Growth, cfg: TokenizerConfig, i: int, workdir: Path,
              limit: int) -> Counter:
    """Learn up to `limit` (and the source's vocab_size) merges from a train_bpe source's text."""
    src, key = cfg.sources[i], sources.source_key(cfg, i)
    words = base_words(base.tokenizer, sources.source_items(cfg, i, workdir), base.added)
    if not words:
        raise GraftError(f"{key}: no text in {list(src.paths)} that a new merge could apply to")
    log.info("%s: %d word types of two or more base tokens", key, len(words))
    n = min(limit, src.vocab_size)
    with sources.progress(total=n, desc=f"{key}: merges learned", unit=" merges") as bar:
        counts = learn(growth, words, n, src.min_pair_count, bar)
    counts["word_types"] = len(words)
    return counts


def from_words(base: ByteLevelBase, growth: Growth, cfg: TokenizerConfig, i: int, words: list[str] | None,
               workdir: Path, limit: int) -> Counter:
    """Make tokens of a word source's words in order while there is room (at most `limit` new tokens)."""
    counts: Counter = Counter()
    items = iter(sources.source_items(cfg, i, workdir) if words is None else words)
    total = len(words) if words is not None else None
    start = len(growth.merges)
    with sources.progress(total=total, desc=f"{sources.source_key(cfg, i)}: candidates tried",
                          unit=" candidates") as bar:
        while len(growth.merges) - start < limit and (batch := list(itertools.islice(items, WORD_BATCH))):
            reasons = [text_reason(w, cfg) for w in batch]
            passing = [w for w, r in zip(batch, reasons, strict=True) if r is None]
            encoded = iter(base.tokenizer.encode_batch(passing, add_special_tokens=False) if passing else [])
            for reason in reasons:
                room = limit - (len(growth.merges) - start)
                if room <= 0:
                    break
                counts["offered"] += 1
                bar.update()
                if reason is None:
                    reason, added = _word(base, growth, next(encoded), room)
                    if reason is None:
                        counts["added"] += 1
                        counts["intermediates_added"] += added - 1
                        continue
                counts[reason] += 1
            made = len(growth.merges) - start
            bar.set_postfix_str(f"{made} new tokens, {limit - made} to go", refresh=False)
    return counts


def _word(base: ByteLevelBase, growth: Growth, enc, room: int) -> tuple[str | None, int]:
    """(why one segmented candidate is skipped or None, the merges added for it)."""
    if len(set(enc.word_ids)) > 1 or base.added.intersection(enc.ids):
        return "skipped_pretokens", 0  # the base splits it into several pre-tokens: no token can span them
    return plan_word(growth, enc.ids, room)
