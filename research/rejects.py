"""The rejects log: every input row a stage drops, with where it came from and why (written to rejects.jsonl).

One class for every stage. Each row names its origin under `key` (`step` for data preparation, `dataset` for
evaluation), then `file`, `line`, `reason`, any extra fields the caller gives (in the order given; None values
left out) and, when a text is given, its first `SNIPPET_CHARS` characters.
"""

import json
from pathlib import Path

SNIPPET_CHARS = 200


class Rejects:
    def __init__(self, key: str = "step"):
        self.key = key
        self.rows: list[dict] = []

    def add(self, where: str, file, line: int, reason: str, text: str | None = None, **extra) -> None:
        row = {self.key: where, "file": str(file), "line": line, "reason": reason}
        row.update((k, v) for k, v in extra.items() if v is not None)
        if text is not None:
            row["text"] = text[:SNIPPET_CHARS]
        self.rows.append(row)

    def add_record(self, where: str, rec, reason: str, **extra) -> None:
        """Reject a record that knows its origin (`file`, `line`) and its `text`."""
        self.add(where, rec.file, rec.line, reason, rec.text, **extra)

    def count(self, where: str | None = None) -> int:
        return sum(1 for r in self.rows if where is None or r[self.key] == where)

    def reasons(self, where: str | None = None) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            if where is None or r[self.key] == where:
                out[r["reason"]] = out.get(r["reason"], 0) + 1
        return dict(sorted(out.items()))

    def write(self, path: Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for r in self.rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
