"""The question record every loader produces, and the check that turns a raw row into one (or a reject)."""

from dataclasses import dataclass

from research.rejects import Rejects

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
