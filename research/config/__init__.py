"""Structured configs (dataclasses) behind every Hydra config group, registered in Hydra's ConfigStore.

Each group's YAML files are merged onto the typed node of `GraftConfig`, so an unknown key or a wrong type
fails when the config is composed; `to_object` then builds the dataclasses, whose `__post_init__` checks
values and raises `ConfigError` naming the key and the bad value.
"""

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from research.config.root import GraftConfig
from research.errors import ConfigError, GraftError

SCHEMA_NAME = "graft_schema"
GROUPS = ("tokenizer", "init", "model", "data", "buckets", "schedule", "plugin", "eval", "logger")


def register() -> None:
    """Store the root schema; `conf/base.yaml` lists it first in its defaults."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=GraftConfig)


def to_object(cfg: DictConfig) -> GraftConfig:
    """Resolve and validate a composed config; raise GraftError with a one-line message on failure."""
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
