"""Errors that the apps report as one line and a non-zero exit code (never a deep traceback)."""


class GraftError(Exception):
    """A problem the user can fix: bad input, bad config, missing file. Reported as one line."""


class ConfigError(GraftError, ValueError):
    """A config value that cannot work. The message names the key and the bad value."""

    def __init__(self, key: str, value, reason: str):
        self.key, self.value, self.reason = key, value, reason
        super().__init__(f"{key}={value!r}: {reason}")


def check(cond: bool, key: str, value, reason: str) -> None:
    """Raise ConfigError(key, value, reason) unless cond holds."""
    if not cond:
        raise ConfigError(key, value, reason)
