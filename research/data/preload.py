"""Imported by the forkserver that starts prepare_data's worker processes (research/data/engine.py `PRELOAD`):
builds, once, what every worker would otherwise build for itself — the character-class table of every code point
(research/data/charclass.py, about half a second), so each worker starts with it."""

from research.data import charclass

charclass.table()
