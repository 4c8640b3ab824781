"""Append new pieces to a base SentencePiece BPE model until an exact target size.

Base pieces keep their ids, scores and types exactly. New pieces are scored one apart below the lowest
ordinary base score, in candidate order: distinct scores fix the merge order, so the slow tokenizer, the
fast tokenizer and SentencePiece itself all agree (pieces tied at score 0, the reference's choice, are
broken differently by each). Scoring them below LLaMA-2's -1e9 outliers would lose the distinction in
float32, so they go just under the ordinary range instead.

`expand` checks the target and the sources' files, takes candidates source by source (`decide` says, for
each, why it is skipped or which pieces it adds), then builds the output model and the report.
"""

import copy
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sentencepiece import sentencepiece_model_pb2 as pb
from tqdm import tqdm

from research.config.tokenizer import TokenizerConfig
from research.errors import GraftError
from research.tokenizer import sources
from research.tokenizer.bpe import intermediates_for, is_reachable
from research.tokenizer.script import in_script, invalid_reason
from research.tokenizer.spm_model import NORMAL, lowest_ordinary_score, merge_scores

log = logging.getLogger(__name__)


def _candidates(cfg: TokenizerConfig, i: int, workdir: Path):
    src = cfg.sources[i]
    return sources.SOURCES[src.kind](src, f"tokenizer.sources[{i}] ({src.kind})", cfg, workdir)


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


def expand(base: pb.ModelProto, cfg: TokenizerConfig, workdir: Path) -> tuple[pb.ModelProto, dict]:
    """Return the expanded model and a report of what each source gave and why candidates were skipped."""
    x = Expansion.start(base, cfg)
    # Check every source's files before the slow work (training a model) starts.
    for i, src in enumerate(cfg.sources):
        for path in src.paths:
            sources._readable(path, f"tokenizer.sources[{i}] ({src.kind})")
    per_source = add_from_sources(x, workdir)
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


def add_from_sources(x: Expansion, workdir: Path) -> list[dict]:
    """Take candidates from each source in turn until the target is reached; the report's row per source."""
    per_source = []
    bar = tqdm(total=x.room, desc="new pieces", unit="piece", disable=None)
    for i, src in enumerate(x.cfg.sources):
        if x.room <= 0:
            per_source.append({"kind": src.kind, "paths": list(src.paths), "used": False})
            continue
        counts = add_from_source(x, i, workdir, bar)
        per_source.append({"kind": src.kind, "paths": list(src.paths), "used": True, **dict(sorted(counts.items()))})
    bar.close()
    return per_source


def add_from_source(x: Expansion, i: int, workdir: Path, bar) -> Counter:
    """Add source i's candidates (up to its max_pieces, counting intermediates) while there is room;
    return how many were offered, added, and skipped for each reason."""
    src = x.cfg.sources[i]
    counts: Counter = Counter()
    taken = 0
    for piece in _candidates(x.cfg, i, workdir):
        if x.room <= 0 or (src.max_pieces and taken >= src.max_pieces):
            break
        counts["offered"] += 1
        notes, pieces = decide(piece, x)
        counts.update(notes)
        if not pieces:
            continue
        x.add(pieces)
        counts["added"] += 1
        counts["intermediates_added"] += len(pieces) - 1
        taken += len(pieces)
        bar.update(len(pieces))
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
    trial = dict(x.scores)
    trial[piece] = x.next_score()
    if is_reachable(piece, trial):
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
