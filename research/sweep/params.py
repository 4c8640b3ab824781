"""Which jobs a sweep defines: Hydra's basic sweeper expands `hydra.sweeper.params` plus the command line's
overrides into a cartesian product, in a fixed order (job k gets the k-th combination)."""

from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from research.cli import CONF_DIR
from research.errors import GraftError


class GroupOptions:
    """The one thing Hydra's parser asks its config loader for, to expand a `glob(...)` sweep over a config
    group: the group's choices, the names of `<conf dir>/<group>/*.yaml` in sorted order (as Hydra lists them)."""

    def __init__(self, conf_dirs: list[str] | tuple[str, ...]):
        self.conf_dirs = [Path(d) for d in conf_dirs]

    def get_group_options(self, group_name: str, results_filter=None, config_name=None, overrides=None) -> list[str]:
        return sorted({f.stem for d in self.conf_dirs for f in (d / group_name).glob("*.yaml")})


def expand(params: dict | None, overrides: list[str] | tuple[str, ...] = (),
           conf_dirs: list[str] | tuple[str, ...] | None = None) -> list[list[str]]:
    """The override list of every job, in launch order, exactly as BasicSweeper builds them.

    `params` is `hydra.sweeper.params` ({"init": "zero,random"}); `overrides` the command line. A key given in
    both takes the command line's values, as in Hydra (later overrides of the same key win). A group swept with
    `glob(...)` ({"init": "glob(*)"}) takes the matching files of `conf_dirs` (default: the apps' conf/), so a
    sweep read back later lists the group's files as they are now.
    """
    strings = [f"{k}={v}" for k, v in (params or {}).items()] + list(overrides)
    try:
        parsed = OverridesParser.create(config_loader=GroupOptions(conf_dirs or (CONF_DIR,))).parse_overrides(strings)
        batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    except Exception as e:  # Hydra's parser errors are multi-line; keep the first line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GraftError(f"cannot expand sweep overrides {strings}: {first}") from None
    return [list(job) for job in batches[0]]


def split(override: str) -> tuple[str, str]:
    """'init=zero' -> ('init', 'zero'); '+eval.x=1' -> ('eval.x', '1'); '~logger' -> ('logger', '')."""
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def as_dict(overrides: list[str]) -> dict[str, str]:
    return dict(split(o) for o in overrides)


def swept_keys(jobs: list[dict[str, str]]) -> list[str]:
    """Keys whose value differs between jobs, in first-seen order; with a single job, every key it sets."""
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job if k not in keys]
    if len(jobs) <= 1:
        return keys
    return [k for k in keys if len({job.get(k) for job in jobs}) > 1]
