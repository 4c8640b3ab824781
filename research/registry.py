"""A named registry: the one list of a strategy kind's names, filled by a decorator beside each function.

Config modules validate a choice against a registry's keys, and the stage looks the function up in it, so
adding a choice is one registered function plus its YAML file. Registry modules import nothing heavy at module
level (configs import them when composing).
"""

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


class Registry(dict):
    """name -> function, in registration order."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what
        """What an entry is, for messages (e.g. "init strategy")."""

    def register(self, name: str) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            if name in self:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self[name] = fn
            return fn

        return deco
