"""python -m research.collect_sweep <multirun dir>: one table of a sweep's jobs.

Reads each job's `.hydra/overrides.yaml` (what the job swept) and `summary.json` (its key figures), and writes
`sweep.csv` (every figure), `sweep.md` (one row per job: swept values, key metrics, status) and `sweep.png` (key
metrics against the swept value) into the multirun folder. A job without summary.json is listed as failed, a
combination the sweep defines without a job folder as missing. `<parent>/latest` means the newest sweep there.
One run's folder (a pipeline's run root or one job: its own stages.json, summary.json or .hydra/) is an error
(exit status 2) and nothing is written into it.
"""

import argparse
import logging
import sys

from research.errors import GraftError
from research.sweep.jobs import OK, load_sweep
from research.sweep.sweep_files import write_all

log = logging.getLogger("graft.collect_sweep")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m research.collect_sweep", description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", help="a Hydra multirun folder, e.g. multirun/init_strategy/2026-11-29_10-00-00")
    args = parser.parse_args(argv)
    try:
        sweep = load_sweep(args.sweep_dir)
        paths = write_all(sweep)
    except (GraftError, OSError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    bad = [j for j in sweep.jobs if j.status != OK]
    print(f"{sweep.dir}: {len(sweep.jobs) - len(bad)} ok, {len(bad)} failed or missing; swept "
          f"{', '.join(sweep.swept) or 'nothing'}")
    for j in bad:
        print(f"  job {j.name} {j.status}: {j.reason}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
