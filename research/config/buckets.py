"""Schema of the `buckets` group: how each category is split into bins and bins into buckets."""

from dataclasses import dataclass

from research.errors import check


@dataclass
class BucketsConfig:
    num_bins: int = 10
    """Each category is split into this many bins; bucket k holds bin k of every category."""
    seed: int = 0

    def __post_init__(self):
        check(self.num_bins > 0, "buckets.num_bins", self.num_bins, "must be positive")
