"""A plain multiple-choice format for your own questions: jsonl lines {id, question, choices: [...], answer: "B",
subject, split?, language?, category?}, or CSV with columns id, question, choices (a JSON list) or A, B, C, ...,
answer, subject[, split, language, category]. Rows with split "dev" are the shot pool; the rest is "test"."""

import json
from pathlib import Path

from research.eval.datasets.base import Collector, existing, files_in, read_csv, read_jsonl
from research.eval.question import LETTERS

NAME = "generic"
DEFAULT_SPLIT = "test"


def _add(c: Collector, file: Path, n: int, r: dict) -> None:
    choices = r.get("choices")
    if isinstance(choices, str):
        try:
            choices = json.loads(choices)
        except json.JSONDecodeError as e:
            c.reject(file, n, f"choices is not a JSON list: {e.msg}")
            return
    if choices is None:
        choices = [r[k] for k in LETTERS if r.get(k) not in (None, "")] or None
    if r.get("id") in (None, ""):
        c.reject(file, n, "missing id")
        return
    subject = str(r.get("subject") or "default")
    split = str(r.get("split") or "test")
    if split not in ("dev", "val", "test"):
        c.reject(file, n, f"split {split!r} is not dev, val or test")
        return
    q = c.add(split, file, n, id=str(r["id"]), subject=subject, question=r.get("question"), choices=choices,
              answer=r.get("answer"), language=str(r.get("language") or "en"))
    if q is not None and r.get("category"):
        q.category = str(r["category"])


def load(path: str | None, c: Collector) -> None:
    for file in files_in(existing(path, NAME), (".jsonl", ".csv"), NAME):
        if file.suffix == ".jsonl":
            for n, row in read_jsonl(file, c):
                _add(c, file, n, row)
            continue
        header = None
        for n, row in read_csv(file, c):
            if header is None:
                header = [h.strip() for h in row]
                continue
            if len(row) != len(header):
                c.reject(file, n, f"expected {len(header)} columns, got {len(row)}")
                continue
            _add(c, file, n, dict(zip(header, row, strict=True)))


def category(subject: str) -> str:
    return ""  # per row, from the optional `category` field
