"""Schema of the `plugin` group: the Colossal-AI Booster plugin and its options."""

from dataclasses import dataclass


@dataclass
class PluginConfig:
    name: str = "ddp"
