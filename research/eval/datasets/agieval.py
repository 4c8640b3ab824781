"""AGIEval in its released format: one `{task}.jsonl` per task, lines {passage, question, options
["(A)...", ...], label}. Cloze tasks (no options) and multi-answer questions are rejected with a reason."""

import re

from research.eval.datasets.base import Collector, existing, files_in, read_jsonl

NAME = "agieval"
DEFAULT_SPLIT = "test"
CHINESE_TASKS = ("gaokao", "logiqa-zh", "jec-qa")
OPTION_PREFIX = re.compile(r"^\s*\(?\s*([A-J])\s*\)\s*|^\s*([A-J])\s*[\.．、:：]\s*")
CJK = re.compile(r"[\u4e00-\u9fff]")


def language(task: str, text: str) -> str:
    return "zh" if task.startswith(CHINESE_TASKS) or CJK.search(text) else "en"


def load(path: str | None, c: Collector) -> None:
    for file in files_in(existing(path, NAME), (".jsonl",), NAME):
        task = file.stem
        for n, row in read_jsonl(file, c):
            options = row.get("options")
            if not options:
                c.reject(file, n, "no options (cloze question, not multiple choice)")
                continue
            if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
                c.reject(file, n, f"options must be a list of strings, got {options!r}"[:200])
                continue
            label = row.get("label")
            if isinstance(label, list):
                if len(label) != 1:
                    c.reject(file, n, f"multi-answer question (label {label!r}), only single choice is scored")
                    continue
                label = label[0]
            choices = [OPTION_PREFIX.sub("", o, count=1) for o in options]
            question = row.get("question")
            c.add("test", file, n, id=f"{task}/test/{n}", subject=task, question=question, choices=choices,
                  answer=label, passage=row.get("passage") or "",
                  language=language(task, question if isinstance(question, str) else ""))


def category(subject: str) -> str:
    return ""
