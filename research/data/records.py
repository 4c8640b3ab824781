"""The unit every step passes on (a document) and the rejects log every step writes to."""

import json
from dataclasses import dataclass
from pathlib import Path

SNIPPET_CHARS = 200


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


class Rejects:
    """Every record a step drops, with where it came from and why; written to rejects.jsonl in drop order."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, step: str, file: str, line: int, reason: str, text: str = "",
            kept: str | None = None, detail: str | None = None) -> None:
        row = {"step": step, "file": file, "line": line, "reason": reason}
        if detail is not None:
            row["detail"] = detail
        if kept is not None:
            row["kept"] = kept
        row["text"] = text[:SNIPPET_CHARS]
        self.rows.append(row)

    def add_record(self, step: str, rec: Record, reason: str, **kw) -> None:
        self.add(step, rec.file, rec.line, reason, rec.text, **kw)

    def count(self, step: str) -> int:
        return sum(1 for r in self.rows if r["step"] == step)

    def reasons(self, step: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            if r["step"] == step:
                out[r["reason"]] = out.get(r["reason"], 0) + 1
        return dict(sorted(out.items()))

    def write(self, path: Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for r in self.rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
