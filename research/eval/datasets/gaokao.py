"""GAOKAO-Bench objective questions in their released format: one JSON file per subject,
{"keywords": ..., "example": [{"year", "category", "question", "answer": ["B"], "analysis", "index"}]}.
The options are inside the question text; they are split off when the markers A..D are found in order, otherwise
the whole text is the question and only the letters are scored (log-likelihood ranking skips it)."""

import json
import re
from pathlib import Path

from research.eval.datasets.base import Collector, existing, files_in

NAME = "gaokao"
LANGUAGE = "zh"
DEFAULT_SPLIT = "test"
MARKER = re.compile(r"(?:^|(?<=\s)|(?<=[（(）)。？?：:]))([A-G])\s*[\.．、:：]")


def split_options(text: str) -> tuple[str, list[str] | None]:
    """(stem, choice texts) when markers A, B, C, ... appear in order; (text, None) otherwise."""
    marks = list(MARKER.finditer(text))
    for i, m in enumerate(marks):
        if m.group(1) != "A":
            continue
        seq = [m]
        for nxt in marks[i + 1:]:
            if nxt.group(1) == chr(ord(seq[-1].group(1)) + 1):
                seq.append(nxt)
        if len(seq) >= 2:
            ends = [s.start() for s in seq[1:]] + [len(text)]
            choices = [text[s.end():e].strip() for s, e in zip(seq, ends, strict=True)]
            if all(choices):
                return text[: m.start()].strip(), choices
    return text, None


def subject_of(keywords: str, file: Path) -> str:
    s = keywords or file.stem
    return re.sub(r"^\d{4}-\d{4}_", "", s).removesuffix("_MCQs")


def load(path: str | None, c: Collector) -> None:
    for file in files_in(existing(path, NAME), (".json",), NAME):
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            c.reject(file, e.lineno, f"bad JSON: {e.msg}")
            continue
        except UnicodeDecodeError as e:
            c.reject(file, 0, f"not UTF-8: {e}")
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("example"), list):
            c.reject(file, 1, 'expected {"keywords": ..., "example": [...]}')
            continue
        subject = subject_of(str(doc.get("keywords") or ""), file)
        for i, ex in enumerate(doc["example"]):
            where = i + 1  # entry number in "example" (JSON arrays have no line per entry)
            if not isinstance(ex, dict):
                c.reject(file, where, "example entry is not an object")
                continue
            answer = ex.get("answer")
            if isinstance(answer, list):
                if len(answer) != 1:
                    c.reject(file, where, f"multi-answer question (answer {answer!r}), only single choice is scored")
                    continue
                answer = answer[0]
            text = ex.get("question")
            stem, choices = split_options(text) if isinstance(text, str) else (text, None)
            labels = None if choices else list("ABCD")
            index = ex.get("index", i)
            c.add("test", file, where, id=f"{subject}/test/{index}", subject=subject, question=stem,
                  choices=choices, labels=labels, answer=answer, language=LANGUAGE)


def category(subject: str) -> str:
    return ""
