"""research.train.stage_plan: a schedule resolved to steps (lookup, learning rate); bucket selections."""



import pytest

from research.config.schedule import StageConfig, parse_buckets
from research.errors import ConfigError
from research.train.stage_plan import Schedule, Stage


def _schedule():
    a = StageConfig(name="a", steps=10, warmup=0.2, decay="cosine", min_lr_ratio=0.1, lr_scale=1.0)
    b = StageConfig(name="b", steps=5, decay="constant", lr_scale=0.5)
    return Schedule([Stage(0, a, 0, 10, 0), Stage(1, b, 10, 5, 0)], peak_lr=1.0)


def test_schedule_lookup_and_lr():
    s = _schedule()
    assert s.total_steps == 15
    assert s.lookup(0)[0].config.name == "a" and s.lookup(9)[0].config.name == "a"
    stage, frac = s.lookup(12)
    assert stage.config.name == "b" and frac == pytest.approx(0.4)
    assert s.lr(0) == pytest.approx(0.5) and s.lr(1) == pytest.approx(1.0)  # warm-up over 2 steps
    assert s.lr(2) == pytest.approx(1.0) and s.lr(9) == pytest.approx(0.1)  # cosine to min_lr_ratio
    assert all(s.lr(i) >= s.lr(i + 1) for i in range(1, 9))
    assert s.lr(10) == s.lr(14) == pytest.approx(0.5)


def test_parse_buckets():
    assert parse_buckets("all", 4) == [0, 1, 2, 3]
    assert parse_buckets("0-2,5", 6) == [0, 1, 2, 5]
    assert parse_buckets("0%-10%", 4) + parse_buckets("10%-100%", 4) == [0, 1, 2, 3]
    assert parse_buckets("0%-70%", 10) == list(range(7)) and parse_buckets("70%-90%", 10) == [7, 8]
    with pytest.raises(ConfigError, match="does not exist"):
        parse_buckets("3-4", 4)
