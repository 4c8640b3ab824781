"""Schema of the `schedule` group: the training stages (knowledge injection, replay, ...)."""

from dataclasses import dataclass


@dataclass
class ScheduleConfig:
    name: str = "colossal_3stage"
