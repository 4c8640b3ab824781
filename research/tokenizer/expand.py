"""Append new pieces to a base SentencePiece BPE model until an exact target size.

Base pieces keep their ids, scores and types exactly. New pieces are scored one apart below the lowest
ordinary base score, in candidate order: distinct scores fix the merge order, so the slow tokenizer, the
fast tokenizer and SentencePiece itself all agree (pieces tied at score 0, the reference's choice, are
broken differently by each). Scoring them below LLaMA-2's -1e9 outliers would lose the distinction in
float32, so they go just under the ordinary range instead.

`expand` checks the target and the sources' files, checks that the sources can reach the target at all
(`check_reachable`: an upper bound on the new pieces each source can give, in seconds, before any model is trained
or candidate tried), takes candidates source by source (`decide` says, for each, why it is skipped or which pieces
it adds), then builds the output model and the report.
"""

import copy
import logging
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sentencepiece import sentencepiece_model_pb2 as pb

from research.config.tokenizer import TokenizerConfig
from research.errors import GraftError
from research.tokenizer import sources
from research.tokenizer.bpe import intermediates_for, is_reachable, max_intermediates
from research.tokenizer.script import in_script, invalid_reason
from research.tokenizer.spm_model import NORMAL, lowest_ordinary_score, merge_scores

log = logging.getLogger(__name__)




@dataclass
class Expansion:
    """The vocabulary as it grows: the pieces present, their merge scores, and the new pieces in order.

    While candidates are tried, new pieces get provisional scores one apart below `floor` (each trial and
    each committed piece takes the next one); the final scores are `floor - 1 - rank` (`output_model`)."""
    cfg: TokenizerConfig
    target: int
    base_size: int
    base_pieces: set[str]
    scores: dict[str, float]
    floor: float
    present: set[str] = field(default_factory=set)
    new: list[str] = field(default_factory=list)
    provisional: float = 0.0

    @classmethod
    def start(cls, base: pb.ModelProto, cfg: TokenizerConfig) -> "Expansion":
        """The empty expansion of `base`; a GraftError when the target is below the base size."""
        base_size = len(base.pieces)
        if cfg.final_size < base_size:
            raise GraftError(f"tokenizer.target_size={cfg.target_size}: smaller than the base vocabulary "
                             f"({base_size} pieces)")
        base_pieces = {p.piece for p in base.pieces}
        floor = lowest_ordinary_score(base)
        return cls(cfg, cfg.final_size, base_size, base_pieces, merge_scores(base), floor,
                   present=set(base_pieces), provisional=floor)

    @property
    def room(self) -> int:
        """Pieces still to add to reach the target."""
        return self.target - self.base_size - len(self.new)

    def next_score(self) -> float:
        self.provisional -= 1.0
        return self.provisional

    def add(self, pieces: list[str]) -> None:
        for p in pieces:
            self.scores[p] = self.next_score()
            self.present.add(p)
            self.new.append(p)


@dataclass
class Reach:
    """What `check_reachable` found: the upper bound per source it looked at, and the candidates it read."""
    needed: int
    bounds: dict[int, int] = field(default_factory=dict)
    candidates: dict[int, list[str]] = field(default_factory=dict)
    """source index -> its candidates, for the sources that were read to bound them (reused by the expansion)."""


def check_sources(base: pb.ModelProto, cfg: TokenizerConfig) -> Reach:
    """Everything about the target and the sources that can fail up front: a target below the base size, a
    missing or unreadable file, a target the sources cannot reach. Seconds, before any slow work."""
    x = Expansion.start(base, cfg)
    for i, src in enumerate(cfg.sources):
        sources.check_fits(src.kind, "sentencepiece", f"tokenizer.sources[{i}]", cfg.base_path)
        for path in src.paths:
            sources._readable(path, sources.source_key(cfg, i))
    return check_reachable(x)


def pieces_bound(pieces, x: Expansion) -> tuple[int, int]:
    """(an upper bound on the new pieces these candidates can add, the most one of them can add).

    The filters of `decide` that do not depend on what was added before are applied; each distinct remaining
    candidate adds itself and, under `add_intermediates`, the characters it lacks (counted once over all
    candidates) and at most `max_intermediates` inner pieces."""
    cfg, seen, chars = x.cfg, set(), set()
    inner = most = 0
    for p in pieces:
        if p in seen or p in x.base_pieces or len(p) > cfg.max_piece_chars or not in_script(p, cfg.script) \
                or invalid_reason(p):
            continue
        seen.add(p)
        if cfg.unreachable == "add_intermediates":
            lacking = {c for c in p if c not in x.scores}
            chars |= lacking
            inner += max_intermediates(len(p)) - len(p)
            most = max(most, 1 + len(lacking) + max_intermediates(len(p)) - len(p))
        else:
            most = 1
    return len(seen) + len(chars - seen) + inner, most


def source_bound(x: Expansion, i: int) -> tuple[int, list[str] | None]:
    """(an upper bound on the new pieces source i can add, its candidates if they were read to find it)."""
    cfg, src = x.cfg, x.cfg.sources[i]
    if src.kind in sources.BOUNDS:  # slow to enumerate: bound its candidates, each at most so long
        n = sources.BOUNDS[src.kind](src)
        longest = min(cfg.max_piece_chars, sources.MAX_SP_PIECE_CHARS)
        most = 1 + max_intermediates(longest) if cfg.unreachable == "add_intermediates" else 1
        total, pieces = n * most, None
    else:
        with tempfile.TemporaryDirectory() as tmp:  # for a kind that writes there (the built-in ones do not)
            pieces = list(sources.source_items(cfg, i, Path(tmp)))
        total, most = pieces_bound(pieces, x)
    if src.max_pieces:
        total = min(total, src.max_pieces - 1 + most)
    return total, pieces


def check_reachable(x: Expansion) -> Reach:
    """A GraftError naming tokenizer.target_size, the bound and the sources when the sources together cannot
    give the new pieces the target needs. Sources are looked at in order, until their bounds reach the target."""
    cfg = x.cfg
    reach = Reach(needed=x.room)
    total = 0
    for i in range(len(cfg.sources)):
        if total >= reach.needed:
            break
        reach.bounds[i], pieces = source_bound(x, i)
        total += reach.bounds[i]
        if pieces is not None:
            reach.candidates[i] = pieces
    if total < reach.needed:
        raise unreachable(cfg, reach, total, x.base_size, "pieces")
    return reach


def unreachable(cfg: TokenizerConfig, reach: Reach, total: int, base_size: int, unit: str) -> GraftError:
    """The one-line error of a target the sources cannot reach (`total` < `reach.needed`), naming each bound."""
    per = "; ".join(f"sources[{i}] {cfg.sources[i].kind} {list(cfg.sources[i].paths)}: {b}"
                    + (f" (vocab_size {cfg.sources[i].vocab_size})" if cfg.sources[i].kind in sources.BOUNDS else "")
                    for i, b in reach.bounds.items())
    size = f"{cfg.target_size}" + (f" (padded to {cfg.final_size})" if cfg.final_size != cfg.target_size else "")
    return GraftError(
        f"tokenizer.target_size={size}: unreachable: it needs {reach.needed} new {unit} over the base's "
        f"{base_size}, and the sources can give at most {total} ({per}), {reach.needed - total} short of "
        "the target; lower tokenizer.target_size, add a source or raise sources[].vocab_size")


def expand(base: pb.ModelProto, cfg: TokenizerConfig, workdir: Path,
           reach: Reach | None = None) -> tuple[pb.ModelProto, dict]:
    """Return the expanded model and a report of what each source gave and why candidates were skipped.

    `reach`: the result of `check_sources(base, cfg)` when the caller already ran it (it is run otherwise)."""
    if reach is None:
        reach = check_sources(base, cfg)
    x = Expansion.start(base, cfg)
    per_source = add_from_sources(x, workdir, reach.candidates)
    if x.room > 0:
        raise GraftError(
            f"tokenizer.target_size={cfg.target_size}: the sources gave only {len(x.new)} usable new pieces, "
            f"{x.room} short of the target; add a source or raise sources[].vocab_size")
    out = output_model(base, x.new, x.floor)
    report = {
        "base_size": x.base_size,
        "final_size": len(out.pieces),
        "new_pieces": len(x.new),
        "new_score_range": [x.floor - 1.0, x.floor - float(len(x.new))],
        "unreachable_policy": cfg.unreachable,
        "sources": per_source,
    }
    return out, report


def add_from_sources(x: Expansion, workdir: Path, read: dict[int, list[str]] | None = None) -> list[dict]:
    """Take candidates from each source in turn until the target is reached; the report's row per source.
    `read`: source index -> its candidates, for sources already read (by `check_reachable`)."""
    per_source = []
    for i, src in enumerate(x.cfg.sources):
        if x.room <= 0:
            per_source.append({"kind": src.kind, "paths": list(src.paths), "used": False})
            continue
        pieces = (read or {}).get(i)
        counts = add_from_source(x, i, workdir, pieces)
        per_source.append({"kind": src.kind, "paths": list(src.paths), "used": True, **dict(sorted(counts.items()))})
    return per_source


def add_from_source(x: Expansion, i: int, workdir: Path, pieces: list[str] | None = None) -> Counter:
    """Add source i's candidates (`pieces`, or the source's own when None; up to its max_pieces, counting
    intermediates) while there is room; return how many were offered, added, and skipped for each reason.
    A progress bar counts the candidates tried, with the new pieces so far and those still to add."""
    src = x.cfg.sources[i]
    counts: Counter = Counter()
    taken = 0
    candidates = sources.source_items(x.cfg, i, workdir) if pieces is None else pieces
    total = len(candidates) if isinstance(candidates, list) else None
    with sources.progress(total=total, desc=f"{sources.source_key(x.cfg, i)}: candidates tried",
                          unit=" candidates") as bar:
        for piece in candidates:
            if x.room <= 0 or (src.max_pieces and taken >= src.max_pieces):
                break
            counts["offered"] += 1
            bar.update()
            if counts["offered"] % 1000 == 0:
                bar.set_postfix_str(f"{len(x.new)} new pieces, {x.room} to go", refresh=False)
            notes, new = decide(piece, x)
            counts.update(notes)
            if not new:
                continue
            x.add(new)
            counts["added"] += 1
            counts["intermediates_added"] += len(new) - 1
            taken += len(new)
        bar.set_postfix_str(f"{len(x.new)} new pieces, {x.room} to go", refresh=True)
    return counts


def decide(piece: str, x: Expansion) -> tuple[tuple[str, ...], list[str]]:
    """(the counts it adds to, the pieces to add: intermediates first, then `piece`) for one candidate.

    A skipped candidate gives no pieces, and its counts end with the reason (rejected_<why> | skipped_<why>).
    An unreachable one (BPE cannot build it from the pieces present) also counts as "unreachable"."""
    reason = invalid_reason(piece)
    if reason:
        return (f"rejected_{reason}",), []
    if piece in x.base_pieces:
        return ("skipped_in_base",), []
    if piece in x.present:
        return ("skipped_duplicate",), []
    if len(piece) > x.cfg.max_piece_chars:
        return ("skipped_too_long",), []
    if not in_script(piece, x.cfg.script):
        return ("skipped_script",), []
    x.scores[piece] = x.next_score()  # on trial (not present: checked above), removed before anything else
    try:
        reachable = is_reachable(piece, x.scores)
    finally:
        del x.scores[piece]
    if reachable:
        return (), [piece]
    if x.cfg.unreachable == "skip":
        return ("unreachable", "skipped_unreachable"), []
    if x.cfg.unreachable == "add_intermediates":
        found = intermediates_for(piece, x.scores, x.next_score)
        if found is None or len(found) + 1 > x.room:
            return ("unreachable", "skipped_unreachable"), []
        return ("unreachable",), found + [piece]
    return ("unreachable", "kept_unreachable"), [piece]


def output_model(base: pb.ModelProto, new: list[str], floor: float) -> pb.ModelProto:
    """A copy of `base` with the new pieces appended, scored one apart from `floor - 1` down."""
    out = copy.deepcopy(base)
    for rank, piece in enumerate(new):
        sp = out.pieces.add()
        sp.piece, sp.score, sp.type = piece, floor - 1.0 - rank, NORMAL
    out.trainer_spec.vocab_size = len(out.pieces)
    return out
