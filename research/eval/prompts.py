"""Zero- and k-shot prompts in the dataset's language, shortened (shots dropped from the end) until they fit."""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from research.eval.question import Question

HEADERS = {
    "en": "The following are multiple choice questions (with answers) about {subject}.\n\n",
    "zh": "以下是关于{subject}的单项选择题，请直接给出正确答案的选项。\n\n",
}
CUES = {"en": "Answer:", "zh": "答案："}
# English answers follow the cue after a space (" A", as in MMLU's prompts); Chinese ones follow "：" directly.
ANSWER_SEP = {"en": " ", "zh": ""}


def lang(q: Question) -> str:
    return q.language if q.language in HEADERS else "en"


def format_question(q: Question, with_answer: bool) -> str:
    parts = [q.passage] if q.passage else []
    parts.append(q.question)
    if q.choices is not None:
        parts += [f"{label}. {text}" for label, text in zip(q.labels, q.choices, strict=True)]
    text = "\n".join(parts) + "\n" + CUES[lang(q)]
    return text + f"{ANSWER_SEP[lang(q)]}{q.answer}\n\n" if with_answer else text


def header(q: Question) -> str:
    return HEADERS[lang(q)].format(subject=q.subject.replace("_", " "))


@dataclass
class Prompt:
    text: str
    num_shots: int
    length: int
    """Tokens, special tokens included."""
    too_long: bool = False
    """Even the zero-shot prompt leaves no room for the answer: its oldest tokens are cut when scored."""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]


def build_prompt(q: Question, shots: Sequence[Question], num_tokens: Callable[[str], int], max_length: int,
                 answer_room: int) -> Prompt:
    """Header + the first `k` shots + the question, for the largest k <= len(shots) whose tokenized length plus
    `answer_room` fits in `max_length`."""
    head, body = header(q), format_question(q, with_answer=False)
    shot_texts: list[str] = [format_question(s, with_answer=True) for s in shots]
    for k in range(len(shot_texts), -1, -1):
        text = head + "".join(shot_texts[:k]) + body
        n = num_tokens(text)
        if n + answer_room <= max_length:
            return Prompt(text, k, n)
    return Prompt(text, 0, n, too_long=True)
