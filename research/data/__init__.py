"""The data pipeline (`python -m research.prepare_data`): read -> clean -> dedup -> score -> tokenize -> pack -> buckets."""
