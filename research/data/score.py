"""Quality scores per record and the filter on them.

Scorers live in a registry keyed by name (`data.score.scorer`), so a model-based scorer (for example a small
LM's perplexity) is one class plus one entry in `SCORERS`, the only list of names (the `data` schema validates
`data.score.scorer` against it). Each scorer maps a list of records to scores in [0, 1].

The schema imports this module when a config is composed, so nothing heavy is imported at module level: numpy
(character classes) is imported by the signals that use it, a model-based scorer would import its model inside.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from research.data.document import Record
from research.errors import ConfigError
from research.rejects import Rejects

if TYPE_CHECKING:
    from research.config.data import ScoreConfig

STEP = "score"
END_PUNCT = tuple("。！？!?.…\"”’）)」』")


def _length(recs: list[Record]) -> list[float]:
    # saturating in log length: 10 chars -> 0, ~1000+ chars -> 1
    return [min(1.0, max(0.0, (math.log10(max(len(r.text), 1)) - 1.0) / 2.0)) for r in recs]


def _char_diversity(recs: list[Record]) -> list[float]:
    from research.data import charclass as cc

    # distinct characters relative to what natural text of this length shows (~sqrt growth), capped at 1
    distinct = cc.distinct_chars([r.text for r in recs]).tolist()
    return [min(1.0, k / (2.0 * math.sqrt(len(r.text)))) if r.text else 0.0 for r, k in zip(recs, distinct, strict=True)]


def _ends_with_punct(recs: list[Record]) -> list[float]:
    return [1.0 if r.target.rstrip().endswith(END_PUNCT) else 0.0 for r in recs]


def _script_purity(recs: list[Record]) -> list[float]:
    from research.data import charclass as cc

    c = cc.class_counts([r.text for r in recs])
    return [max(h, la) / n if n else 0.0
            for h, la, n in zip(c[cc.HAN].tolist(), c[cc.LATIN].tolist(), c[cc.LETTER].tolist(), strict=True)]


# Each signal scores a batch of records (character classes are counted for the whole batch at once).
SIGNALS: dict[str, Callable[[list[Record]], list[float]]] = {
    "length": _length,
    "char_diversity": _char_diversity,
    "ends_with_punct": _ends_with_punct,
    "script_purity": _script_purity,
}


class HeuristicScorer:
    """Weighted mean of cheap text signals (each in [0, 1])."""

    def __init__(self, cfg: ScoreConfig):
        for name in cfg.signals:
            if name not in SIGNALS:
                raise ConfigError(f"data.score.signals.{name}", cfg.signals[name],
                                  f"unknown signal; known: {sorted(SIGNALS)}")
        self.weights = {k: w for k, w in cfg.signals.items() if w > 0}
        self.total = sum(self.weights.values())

    def __call__(self, records: list[Record]) -> list[float]:
        if not self.total:
            return [1.0] * len(records)
        cols = [(SIGNALS[k](records), w) for k, w in self.weights.items()]
        return [sum(w * col[i] for col, w in cols) / self.total for i in range(len(records))]


SCORERS: dict[str, Callable[[ScoreConfig], Callable[[list[Record]], list[float]]]] = {
    "heuristic": HeuristicScorer,
}
"""name -> scorer factory (called with the `data.score` config)."""


def build_scorer(cfg: ScoreConfig):
    if cfg.scorer not in SCORERS:
        raise ConfigError("data.score.scorer", cfg.scorer, f"unknown scorer; known: {', '.join(SCORERS)}")
    return SCORERS[cfg.scorer](cfg)


def score_filter(records: list[Record], cfg: ScoreConfig, rejects: Rejects) -> tuple[list[Record], dict]:
    scores = build_scorer(cfg)(records) if records else []
    keep = [True] * len(records)
    if cfg.mode == "threshold":
        keep = [s >= cfg.threshold for s in scores]
    elif cfg.mode == "top_fraction":
        by_cat: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            by_cat.setdefault(r.category, []).append(i)
        keep = [False] * len(records)
        for idx in by_cat.values():
            n = max(1, math.ceil(cfg.top_fraction * len(idx)))
            # ties broken by record order, so the choice is deterministic
            for i in sorted(idx, key=lambda i: (-scores[i], i))[:n]:
                keep[i] = True
    kept = []
    for rec, s, k in zip(records, scores, keep, strict=False):
        if k:
            kept.append(rec)
        else:
            rejects.add_record(STEP, rec, f"low_score:{cfg.scorer}", detail=f"{s:.4f}")
    stats = {"in": len(records), "kept": len(kept), "rejected": len(records) - len(kept), "mode": cfg.mode,
             "mean_score": round(sum(scores) / len(scores), 6) if scores else None}
    assert stats["in"] == stats["kept"] + stats["rejected"]
    return kept, stats
