"""The one wrapper every Hydra entry module uses: compose, validate, lock out_dir, run, report errors as one line."""

import faulthandler
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from omegaconf import DictConfig

from research import locks
from research.config import to_object
from research.config.root import GraftConfig
from research.errors import GraftError
from research.orchestrate import supervision

if "TORCHELASTIC_RUN_ID" in os.environ:
    # A worker of torch.distributed.run runs in a session of its own: should the launcher die, even by SIGKILL,
    # nothing else would stop it. (The pipeline's stages get the same signal from the pipeline at their start.)
    supervision.die_with_parent()

# `kill -USR1 <pid>` prints every thread's stack to stderr and the run goes on: what a stuck run is doing.
faulthandler.register(signal.SIGUSR1, all_threads=True)

CONF_DIR = os.environ.get("GRAFT_CONF_DIR", str(Path(__file__).resolve().parent.parent / "conf"))
log = logging.getLogger("graft")


def _multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def app(config_name: str) -> Callable:
    """Decorate `run(cfg: GraftConfig, raw: DictConfig)` into a Hydra main for `conf/<config_name>.yaml`.

    The run holds the lock on `out_dir` throughout (`research.locks.for_run`): a second run into the same folder
    fails at once. A GraftError (bad input, bad value, a folder in use) is printed as `error: ...` on one line and
    exits with status 2; an interrupt (SIGINT or SIGTERM) as one line with status 128 + signal.
    """

    def deco(run: Callable[[GraftConfig, DictConfig], object]) -> Callable:
        @hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=config_name)
        @functools.wraps(run)
        def main(raw: DictConfig):
            try:
                cfg = to_object(raw)
                # SIGTERM (kill, a timeout, a scheduler) unwinds like Ctrl-C, so atomic_dir removes its
                # temporary folder and the lock is released before the process ends.
                with supervision.stop_signals_raise(), locks.for_run(cfg.out_dir):
                    return run(cfg, raw)
            except GraftError as e:
                print(f"error: {e}", file=sys.stderr, flush=True)
                if _multirun():
                    # Let Hydra record this job as failed and run the sweep's other jobs.
                    raise
                sys.exit(2)
            except KeyboardInterrupt as e:  # stops a sweep too: the user asked for it
                signum = getattr(e, "signum", signal.SIGINT)
                if os.environ.get("RANK", "0") == "0":  # one line per run, not one per rank
                    print(f"error: {e or f'interrupted by {signal.Signals(signum).name}'}", file=sys.stderr,
                          flush=True)
                sys.exit(128 + signum)

        return main

    return deco
