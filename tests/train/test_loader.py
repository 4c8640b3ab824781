"""research.train.loader: each stage's packs in bucket order, the per-category mix, each rank's share."""



import pytest

from research import contracts
from research.config.schedule import StageConfig
from research.errors import GraftError
from research.train import loader as D


def test_stage_stream_order_mix_and_rank_shares(run_root):
    m = contracts.read_manifest(run_root / "data")
    buckets = contracts.load_buckets(m)
    st = D.StageStream(StageConfig(name="s", buckets="1-2"), 0, buckets, m.categories, seed=5)
    seq = [st.locate(p) for p in range(st.length)]
    assert [b for b, _ in seq] == [1] * 8 + [2] * 8  # buckets in order, each whole
    assert sorted(r for b, r in seq if b == 1) == list(range(8))
    assert seq == [D.StageStream(StageConfig(name="s", buckets="1-2"), 0, buckets, m.categories, 5).locate(p)
                   for p in range(st.length)]
    assert [r for _, r in seq[:8]] != list(range(8))  # shuffled
    assert [st.locate(p) for p in range(16, 32)] != seq  # the next epoch reshuffles
    shares = [D.RankSlice(st, 0, 4, micro_batch=1, grad_accum=2, dp_size=2, dp_rank=r).items for r in (0, 1)]
    assert sorted(shares[0] + shares[1]) == list(range(16)) and not set(shares[0]) & set(shares[1])
    cats = D._majority_categories(buckets[0], m.categories)
    mixed = D.StageStream(StageConfig(name="m", buckets="0", mix={"en": 0.0, "zh": 2.0}), 0, buckets, m.categories, 5)
    zh = int((cats == m.categories.index("zh")).sum())
    assert mixed.length == 2 * zh
    with pytest.raises(GraftError, match="absent from the data"):
        D.StageStream(StageConfig(name="x", mix={"fr": 1.0}), 0, buckets, m.categories, 5)
