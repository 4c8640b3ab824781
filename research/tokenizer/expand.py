"""Append new pieces to a base SentencePiece BPE model until an exact target size.

Base pieces keep their ids, scores and types exactly. New pieces are scored one apart below the lowest
ordinary base score, in candidate order: distinct scores fix the merge order, so the slow tokenizer, the
fast tokenizer and SentencePiece itself all agree (pieces tied at score 0, the reference's choice, are
broken differently by each). Scoring them below LLaMA-2's -1e9 outliers would lose the distinction in
float32, so they go just under the ordinary range instead.
"""

import copy
import logging
from collections import Counter
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
    key = f"tokenizer.sources[{i}] ({src.kind})"
    if src.kind == "train_sp":
        return sources.train_sp(src, key, cfg.num_threads, cfg.seed, workdir)
    if src.kind == "wordlist":
        return sources.wordlist(src, key)
    return sources.pieces_jsonl(src, key)


def expand(base: pb.ModelProto, cfg: TokenizerConfig, workdir: Path) -> tuple[pb.ModelProto, dict]:
    """Return the expanded model and a report of what each source gave and why candidates were skipped."""
    target = cfg.final_size
    base_size = len(base.pieces)
    if target < base_size:
        raise GraftError(f"tokenizer.target_size={cfg.target_size}: smaller than the base vocabulary "
                         f"({base_size} pieces)")
    base_pieces = {p.piece for p in base.pieces}
    present = set(base_pieces)
    scores = merge_scores(base)
    floor = lowest_ordinary_score(base)
    provisional = [floor]

    def next_score() -> float:
        provisional[0] -= 1.0
        return provisional[0]

    new: list[str] = []
    per_source = []
    # Check every source's files before the slow work (training a model) starts.
    for i, src in enumerate(cfg.sources):
        for path in src.paths:
            sources._readable(path, f"tokenizer.sources[{i}] ({src.kind})")

    bar = tqdm(total=target - base_size, desc="new pieces", unit="piece", disable=None)
    for i, src in enumerate(cfg.sources):
        counts: Counter = Counter()
        if base_size + len(new) >= target:
            per_source.append({"kind": src.kind, "paths": list(src.paths), "used": False})
            continue
        taken = 0
        for piece in _candidates(cfg, i, workdir):
            room = target - base_size - len(new)
            if room <= 0 or (src.max_pieces and taken >= src.max_pieces):
                break
            counts["offered"] += 1
            reason = invalid_reason(piece)
            if reason:
                counts[f"rejected_{reason}"] += 1
                continue
            if piece in base_pieces:
                counts["skipped_in_base"] += 1
                continue
            if piece in present:
                counts["skipped_duplicate"] += 1
                continue
            if len(piece) > cfg.max_piece_chars:
                counts["skipped_too_long"] += 1
                continue
            if not in_script(piece, cfg.script):
                counts["skipped_script"] += 1
                continue
            plan: list[str] = []
            trial = dict(scores)
            trial[piece] = next_score()
            if not is_reachable(piece, trial):
                counts["unreachable"] += 1
                if cfg.unreachable == "skip":
                    counts["skipped_unreachable"] += 1
                    continue
                if cfg.unreachable == "add_intermediates":
                    found = intermediates_for(piece, scores, next_score)
                    if found is None or len(found) + 1 > room:
                        counts["skipped_unreachable"] += 1
                        continue
                    plan = found
                else:
                    counts["kept_unreachable"] += 1
            for p in plan + [piece]:
                scores[p] = next_score()
                present.add(p)
                new.append(p)
            counts["added"] += 1
            counts["intermediates_added"] += len(plan)
            taken += 1 + len(plan)
            bar.update(1 + len(plan))
        per_source.append({"kind": src.kind, "paths": list(src.paths), "used": True, **dict(sorted(counts.items()))})
    bar.close()
    if base_size + len(new) < target:
        raise GraftError(
            f"tokenizer.target_size={cfg.target_size}: the sources gave only {len(new)} usable new pieces, "
            f"{target - base_size - len(new)} short of the target; add a source or raise sources[].vocab_size")

    out = copy.deepcopy(base)
    for rank, piece in enumerate(new):
        sp = out.pieces.add()
        sp.piece, sp.score, sp.type = piece, floor - 1.0 - rank, NORMAL
    out.trainer_spec.vocab_size = len(out.pieces)
    report = {
        "base_size": base_size,
        "final_size": len(out.pieces),
        "new_pieces": len(new),
        "new_score_range": [floor - 1.0, floor - float(len(new))],
        "unreachable_policy": cfg.unreachable,
        "sources": per_source,
    }
    return out, report
