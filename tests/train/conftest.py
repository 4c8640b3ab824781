from pathlib import Path

import pytest
from train_helpers import MAX_LEN, VOCAB, tiny_model


@pytest.fixture(scope="session")
def run_root(tmp_path_factory) -> Path:
    """A run root holding model/ (tiny random Llama) and data/ (4 buckets x 8 packs of 32 tokens)."""
    from research.train.synthetic import write_synthetic_buckets

    root = tmp_path_factory.mktemp("train_root")
    tiny_model(root / "model")
    write_synthetic_buckets(root / "data", VOCAB, MAX_LEN, num_buckets=4, packs_per_bucket=8,
                            categories=("zh", "en"), seed=0)
    return root
