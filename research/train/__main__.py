"""`python -m research.train` (or `torchrun --nproc_per_node N -m research.train`): staged continual pre-training."""

from research.cli import app
from research.train.trainer import run


@app("train")
def main(cfg, raw):
    return run(cfg, raw)


if __name__ == "__main__":
    main()
