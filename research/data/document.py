"""The unit every data-preparation step passes on: one document with where it came from."""

from dataclasses import dataclass


@dataclass(slots=True)
class Record:
    file: str
    """The input file as named in the config (or a file inside a configured folder)."""
    line: int
    """1-based line number (the first line of a block for plain text)."""
    category: str
    source: str
    target: str

    @property
    def uid(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def text(self) -> str:
        return self.source + self.target
