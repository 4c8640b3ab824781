import pytest

from research.config.data import ScoreConfig
from research.data.document import Record
from research.data.score import SCORERS, build_scorer, score_filter
from research.errors import ConfigError
from research.rejects import Rejects

GOOD = "中国人民银行今天宣布，从下月起下调金融机构人民币存款准备金率，以保持流动性合理充裕。" * 3
POOR = "还行吧还行"


def _recs():
    return [Record("f", i, c, "", t) for i, (c, t) in enumerate(
        [("a", GOOD), ("a", POOR), ("b", POOR + "。"), ("b", GOOD), ("a", GOOD + "!")], 1)]


def test_heuristic_scores_are_ordered_and_bounded():
    s = build_scorer(ScoreConfig())(_recs())
    assert all(0 <= x <= 1 for x in s)
    assert s[0] > s[1] and s[3] > s[2]


def test_threshold_and_top_fraction_per_category():
    rejects = Rejects()
    kept, stats = score_filter(_recs(), ScoreConfig(mode="threshold", threshold=0.7), rejects)
    assert [r.line for r in kept] == [1, 4, 5]
    assert stats["in"] == stats["kept"] + stats["rejected"] and rejects.rows[0]["reason"] == "low_score:heuristic"
    kept, _ = score_filter(_recs(), ScoreConfig(mode="top_fraction", top_fraction=0.5), Rejects())
    # ceil(0.5 * 3) = 2 of category a (the two best), ceil(0.5 * 2) = 1 of category b; record order is kept
    assert [r.line for r in kept] == [1, 4, 5]
    kept, _ = score_filter(_recs(), ScoreConfig(mode="none"), Rejects())
    assert len(kept) == 5


def test_registry_and_errors():
    assert "heuristic" in SCORERS
    with pytest.raises(ConfigError, match="data.score.scorer='ppl'"):
        build_scorer(ScoreConfig(scorer="ppl"))
    with pytest.raises(ConfigError, match="data.score.signals.nope"):
        build_scorer(ScoreConfig(signals={"nope": 1.0}))
    SCORERS["const"] = lambda cfg: (lambda recs: [0.5] * len(recs))
    try:
        kept, _ = score_filter(_recs(), ScoreConfig(scorer="const", threshold=0.5), Rejects())
        assert len(kept) == 5
    finally:
        del SCORERS["const"]
