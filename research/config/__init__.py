"""Structured configs (dataclasses) behind every Hydra config group, registered in Hydra's ConfigStore.

Each group's YAML files are merged onto the typed node of `GraftConfig`, so an unknown key or a wrong type
fails when the config is composed; `to_object` then builds the dataclasses, whose `__post_init__` checks
values and raises `ConfigError` naming the key and the bad value.

A key added on the command line with `+` (`+data.maxlength=5`) bypasses that check: Hydra adds it with
`force_add`, which OmegaConf lets through even under a dataclass, and `OmegaConf.to_object` would then set it as
a stray attribute. `to_object` therefore first walks the composed config and rejects any key that is not a field
of its node's dataclass (free-form nodes typed `dict`, like `eval.heldout_texts`, take any key).
"""

import dataclasses
import difflib

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from research.config.root import GraftConfig
from research.errors import ConfigError, GraftError

SCHEMA_NAME = "graft_schema"
GROUPS = ("tokenizer", "init", "model", "data", "buckets", "schedule", "plugin", "eval", "logger")


def register() -> None:
    """Store the root schema; `conf/base.yaml` lists it first in its defaults."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=GraftConfig)


def unknown_keys(node, path: str = "") -> list[tuple[str, list[str]]]:
    """(full key, the node's known keys) for every key of a dataclass-typed node that its dataclass lacks.

    Reads the nodes without resolving interpolations; lists and free-form dicts are searched for typed nodes."""
    found: list[tuple[str, list[str]]] = []
    if isinstance(node, DictConfig):
        if node._is_none() or node._is_missing() or node._is_interpolation():
            return found
        typ = OmegaConf.get_type(node)
        known = [f.name for f in dataclasses.fields(typ)] if dataclasses.is_dataclass(typ) else None
        for key in node.keys():
            full = f"{path}.{key}" if path else str(key)
            if known is not None and key not in known:
                found.append((full, known))
                continue
            found.extend(unknown_keys(node._get_node(key), full))
    elif isinstance(node, ListConfig):
        if node._is_none() or node._is_missing() or node._is_interpolation():
            return found
        for i in range(len(node)):
            found.extend(unknown_keys(node._get_node(i), f"{path}.{i}"))
    return found


def check_known_keys(cfg: DictConfig) -> None:
    """Raise GraftError naming the first key that no schema field matches, with the closest known key."""
    bad = unknown_keys(cfg)
    if not bad:
        return
    key, known = bad[0]
    parent, _, name = key.rpartition(".")
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {parent + '.' if parent else ''}{close[0]}?" if close else ""
    more = f" (and {len(bad) - 1} more: {', '.join(k for k, _ in bad[1:4])})" if len(bad) > 1 else ""
    raise GraftError(f"invalid config: unknown key {key!r}{hint}{more}")


def to_object(cfg: DictConfig) -> GraftConfig:
    """Resolve and validate a composed config; raise GraftError with a one-line message on failure."""
    check_known_keys(cfg)
    try:
        return OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except OmegaConfBaseException as e:
        # OmegaConf's messages are multi-line ("full_key: ..., object_type=..."); keep the first line and the key.
        first = str(e).strip().splitlines()[0]
        key = getattr(e, "full_key", None)
        raise GraftError(f"invalid config{f' at {key}' if key else ''}: {first}") from None


register()
