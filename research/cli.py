"""The one wrapper every Hydra entry module uses: compose, validate, run, report errors as one line."""

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from omegaconf import DictConfig

from research.config import to_object
from research.config.root import GraftConfig
from research.errors import GraftError

CONF_DIR = os.environ.get("GRAFT_CONF_DIR", str(Path(__file__).resolve().parent.parent / "conf"))
log = logging.getLogger("graft")


def _multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def app(config_name: str) -> Callable:
    """Decorate `run(cfg: GraftConfig, raw: DictConfig)` into a Hydra main for `conf/<config_name>.yaml`.

    A GraftError (bad input, bad value) is printed as `error: ...` on one line and exits with status 2.
    """

    def deco(run: Callable[[GraftConfig, DictConfig], object]) -> Callable:
        @hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=config_name)
        @functools.wraps(run)
        def main(raw: DictConfig):
            try:
                return run(to_object(raw), raw)
            except GraftError as e:
                print(f"error: {e}", file=sys.stderr, flush=True)
                if _multirun():
                    # Let Hydra record this job as failed and run the sweep's other jobs.
                    raise
                sys.exit(2)

        return main

    return deco
