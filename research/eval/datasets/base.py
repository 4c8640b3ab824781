"""What every loader shares: a collector that validates rows and catches duplicate ids, and file readers
that report malformed rows with file and line instead of failing."""

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from research.errors import GraftError
from research.eval.question import Question, make_question
from research.rejects import Rejects


class Collector:
    """Validated questions of one dataset, in file order, per split."""

    def __init__(self, dataset: str, rejects: Rejects):
        self.dataset, self.rejects = dataset, rejects
        self.splits: dict[str, list[Question]] = {}
        self._seen: dict[str, str] = {}

    def add(self, split: str, file, line: int, **fields) -> Question | None:
        q = make_question(self.dataset, self.rejects, file, line, **fields)
        if q is None:
            return None
        where = f"{file}:{line}"
        if q.id in self._seen:
            self.rejects.add(self.dataset, file, line, f"duplicate id {q.id!r} (first at {self._seen[q.id]})", id=q.id)
            return None
        self._seen[q.id] = where
        self.splits.setdefault(split, []).append(q)
        return q

    def reject(self, file, line: int, reason: str, **extra) -> None:
        self.rejects.add(self.dataset, file, line, reason, **extra)


def existing(path: str | None, dataset: str) -> Path:
    if not path:
        raise GraftError(f"eval.datasets[{dataset}].path is required: point it at the dataset's released files "
                         "(only mmlu has a packaged copy)")
    p = Path(path).expanduser()
    if not p.exists():
        raise GraftError(f"eval.datasets[{dataset}].path={str(p)!r}: not found")
    return p


def files_in(path: Path, suffixes: tuple, dataset: str) -> list[Path]:
    """A single file, or the files with these suffixes in a folder (sorted, so runs are deterministic)."""
    if path.is_file():
        return [path]
    files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix in suffixes)
    if not files:
        raise GraftError(f"eval.datasets[{dataset}].path={str(path)!r}: no {'/'.join(suffixes)} files in it")
    return files


def read_csv(file: Path, collector: Collector) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each row; an undecodable file is rejected whole."""
    try:
        with open(file, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            try:
                for row in reader:
                    if row and any(c.strip() for c in row):
                        yield reader.line_num, row
            except csv.Error as e:
                collector.reject(file, reader.line_num, f"bad CSV: {e}")
    except UnicodeDecodeError as e:
        collector.reject(file, 0, f"not UTF-8: {e}")


def read_jsonl(file: Path, collector: Collector) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each line; bad JSON lines are rejected and skipped."""
    try:
        with open(file, encoding="utf-8") as f:
            for n, text in enumerate(f, 1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as e:
                    collector.reject(file, n, f"bad JSON: {e.msg}")
                    continue
                if not isinstance(obj, dict):
                    collector.reject(file, n, f"expected a JSON object, got {type(obj).__name__}")
                    continue
                yield n, obj
    except UnicodeDecodeError as e:
        collector.reject(file, 0, f"not UTF-8: {e}")


def split_folders(root: Path, dataset: str, splits: tuple) -> dict[str, Path]:
    """The native layout's split folders (root/dev, root/test, ...); `root/data/<split>` is accepted too."""
    if not any((root / s).is_dir() for s in splits) and (root / "data").is_dir():
        root = root / "data"
    found = {s: root / s for s in splits if (root / s).is_dir()}
    if not found:
        raise GraftError(f"eval.datasets[{dataset}].path={str(root)!r}: expected split folders {'/'.join(splits)}")
    return found
