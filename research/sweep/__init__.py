"""Reading a Hydra multirun folder: its jobs, what each job swept, and the figures each job reported.

`python -m research.collect_sweep <multirun dir>` turns them into sweep.csv, sweep.md and sweep.png; the
notebooks in `notebooks/` load the same jobs through `research.sweep.jobs.load_sweep`.
"""
