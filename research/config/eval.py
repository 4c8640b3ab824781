"""Schema of the `eval` group: benchmarks and methods (`python -m research.evaluate`)."""

from dataclasses import dataclass


@dataclass
class EvalConfig:
    name: str = "mmlu"
