"""Schema of the `train` node: batch sizes, optimizer, checkpointing (`python -m research.train`)."""

from dataclasses import dataclass


@dataclass
class TrainConfig:
    micro_batch_size: int = 1
