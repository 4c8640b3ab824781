from pathlib import Path

import pytest
from train_helpers import DDP_ARGS, MAX_LEN, VOCAB, launch, ok, tiny_model


@pytest.fixture(scope="session")
def run_root(tmp_path_factory) -> Path:
    """A run root holding model/ (tiny random Llama) and data/ (4 buckets x 8 packs of 32 tokens)."""
    from research.train.synthetic import write_synthetic_buckets

    root = tmp_path_factory.mktemp("train_root")
    tiny_model(root / "model")
    write_synthetic_buckets(root / "data", VOCAB, MAX_LEN, num_buckets=4, packs_per_bucket=8,
                            categories=("zh", "en"), seed=0)
    return root


@pytest.fixture(scope="session")
def uninterrupted(run_root, tmp_path_factory) -> Path:
    """out_dir of a 2-process ddp run of DDP_ARGS, never interrupted: what the resume tests compare with."""
    out = tmp_path_factory.mktemp("ddp_full") / "train"
    ok(launch([f"run_root={run_root}", f"out_dir={out}", *DDP_ARGS], nproc=2))
    return out
