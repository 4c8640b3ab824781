"""The question record every loader produces, and the rejects collector for malformed rows."""

import json
from dataclasses import dataclass, field
from pathlib import Path

LETTERS = "ABCDEFGHIJ"


@dataclass
class Question:
    id: str
    """Unique within a dataset; results are merged across processes by this, never by content."""
    subject: str
    question: str
    """The stem (for GAOKAO questions whose options could not be split off: the whole text)."""
    choices: list[str] | None
    """Choice texts in label order; None when only the letters are known (log-likelihood ranking skips these)."""
    labels: list[str]
    """Choice letters, e.g. ["A", "B", "C", "D"]."""
    answer: str
    """Gold letter, one of `labels`."""
    language: str = "en"
    category: str = ""
    passage: str = ""

    @property
    def gold(self) -> int:
        return self.labels.index(self.answer)


@dataclass
class Rejects:
    """Malformed rows: reported with file and line, skipped, counted, written to rejects.jsonl."""

    rows: list[dict] = field(default_factory=list)

    def add(self, dataset: str, file, line: int, reason: str, **extra) -> None:
        self.rows.append({"dataset": dataset, "file": str(file), "line": line, "reason": reason, **extra})

    def count(self, dataset: str | None = None) -> int:
        return sum(1 for r in self.rows if dataset is None or r["dataset"] == dataset)

    def write(self, path: Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for r in self.rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


def make_question(dataset: str, rejects: Rejects, file, line: int, *, id: str, subject: str, question,
                  choices, answer, language: str, passage: str = "", labels=None) -> Question | None:
    """Validate one row; on a problem record it in `rejects` and return None."""
    if not isinstance(question, str) or not question.strip():
        rejects.add(dataset, file, line, "empty or missing question", id=id)
        return None
    if choices is None and not labels:
        rejects.add(dataset, file, line, "missing choices", id=id)
        return None
    if choices is not None:
        if not isinstance(choices, list) or len(choices) < 2:
            rejects.add(dataset, file, line, f"needs at least 2 choices, got {choices!r}"[:200], id=id)
            return None
        if any(c is None or (isinstance(c, str) and not c.strip()) for c in choices):
            rejects.add(dataset, file, line, "missing choice text", id=id)
            return None
        if len(choices) > len(LETTERS):
            rejects.add(dataset, file, line, f"more than {len(LETTERS)} choices", id=id)
            return None
        choices = [str(c).strip() for c in choices]
        labels = list(LETTERS[: len(choices)])
    answer = str(answer).strip().upper() if answer is not None else ""
    if answer not in labels:
        rejects.add(dataset, file, line, f"answer {answer!r} is not among the choices {''.join(labels)}", id=id)
        return None
    return Question(id=id, subject=subject, question=question.strip(), choices=choices, labels=list(labels),
                    answer=answer, language=language, passage=(passage or "").strip())
