"""`python -m research.pipeline`: every stage in order from one config, a cache of finished stages, the run report.

stage_specs.py (the stages as data), keys.py (cache keys), cache.py (cache folders, locks, links), launch.py (one
stage as a subprocess), supervision.py (stages die with the pipeline; a clean stop on SIGINT/SIGTERM),
run_stages.py (the loop), run_report.py (summary.json, report.md and plots).
"""
