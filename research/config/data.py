"""Schema of the `data` group: the data mix and the cleaning / dedup / scoring / packing settings.

Filled in by the data-pipeline work (`python -m research.prepare_data`)."""

from dataclasses import dataclass


@dataclass
class DataConfig:
    name: str = "demo"
