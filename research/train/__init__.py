"""Staged, bucketed continual pre-training on Colossal-AI Booster plugins (`python -m research.train`)."""
