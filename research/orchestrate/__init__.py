"""`python -m research.pipeline`: every stage in order from one config, a cache of finished stages, the run report.

stages.py (the stages as data), keys.py (cache keys), cache.py (cache folders, locks, links), launch.py (one stage as
a subprocess), runner.py (the loop), report.py (summary.json, report.md and plots).
"""
