"""Graft: adapt a base LLaMA-family model to a new language or domain (the Colossal-LLaMA-2 recipe)."""

__version__ = "0.1.0"
