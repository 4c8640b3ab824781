"""The scoring methods, applied to one shard of questions:

- first_token: log-softmax of the next-token logits after the prompt, per letter the max over the ids the
  tokenizer gives for "A" and " A" plus the bare piece "A" (Chinese cues like "答案：" are followed by it);
- loglik: sum of the choice tokens' log-probs given the prompt (lm-evaluation-harness's acc), also divided by
  the choice's characters (acc_norm) and UTF-8 bytes;
- generate: greedy decoding, the first choice letter in the output is the prediction (exact match);
- combined: correct when generate or first_token is (ColossalEval's combined single-choice accuracy).

`METHODS` (name -> function) is the only list of method names: the `eval` schema validates `eval.methods`
against it and takes its default from it. Adding a method is one function registered with `@register("<name>")`.
The schema imports this module when a config is composed, so nothing heavy (torch) is imported at module level.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from research.eval.prompts import ANSWER_SEP, Prompt, lang
from research.eval.question import Question
from research.registry import Registry

if TYPE_CHECKING:
    from research.eval.inference import Scorer

LOGLIK_VARIANTS = ("loglik", "loglik_norm", "loglik_byte")


@dataclass
class Shard:
    """What every method scores: questions, their prompts (text and ids) and the model behind `scorer`."""

    questions: list[Question]
    prompts: list[Prompt]
    prompt_ids: list[list[int]]
    scorer: Scorer
    max_length: int
    max_new_tokens: int


Method = Callable[[Shard], dict[str, dict[str, dict]]]
"""Returns, per question id, {result name: result} (loglik gives one result per variant)."""
METHODS: Registry = Registry("eval method")
"""name -> method, in the order methods run (and their results are written)."""
register = METHODS.register


def letter_ids(tokenizer, letter: str) -> list[int]:
    ids = set()
    for form in (letter, " " + letter):
        enc = tokenizer.encode(form, add_special_tokens=False)
        if enc:
            ids.add(enc[-1])
    bare = tokenizer.convert_tokens_to_ids(letter)
    if bare is not None and bare != tokenizer.unk_token_id:
        ids.add(bare)
    return sorted(ids)


def parse_letter(text: str, labels: Sequence[str]) -> str | None:
    """The first standalone choice letter in generated text ("B", " (B)", "答案是B" all give B)."""
    for m in re.finditer(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])", text):
        if m.group(1) in labels:
            return m.group(1)
    return None


def argmax_label(scores: Sequence[float], labels: Sequence[str]) -> str:
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))  # ties go to the earlier letter
    return labels[best]


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text).input_ids


def fit(ids: list[int], max_length: int, room: int) -> list[int]:
    """Cut the oldest tokens of a prompt that leaves less than `room` tokens for the answer."""
    keep = max(1, max_length - room)
    return ids if len(ids) <= keep else ids[-keep:]


def choice_pairs(tokenizer, prompt_text: str, prompt_ids: list[int], q: Question, max_length: int):
    """(context ids, continuation ids) per choice: the prompt + choice is tokenized whole, and the continuation is
    what follows the longest prefix shared with the prompt's own tokens (robust to merges across the boundary)."""
    pairs = []
    for choice in q.choices:
        full = encode(tokenizer, prompt_text + ANSWER_SEP[lang(q)] + choice)
        p = 0
        while p < min(len(full), len(prompt_ids)) and full[p] == prompt_ids[p]:
            p += 1
        p = min(p, len(full) - 1)
        ctx, cont = full[:p], full[p:]
        pairs.append((fit(ctx, max_length, len(cont)), cont))
    return pairs


@register("first_token")
def first_token(shard: Shard) -> dict[str, dict[str, dict]]:
    tok = shard.scorer.tokenizer
    logps = shard.scorer.next_token_logprobs([fit(ids, shard.max_length, 1) for ids in shard.prompt_ids])
    cache: dict[str, list[int]] = {}
    out = {}
    for q, logp in zip(shard.questions, logps, strict=True):
        scores = []
        for label in q.labels:
            cand = cache.setdefault(label, letter_ids(tok, label))
            scores.append(float(logp[cand].max()))
        out[q.id] = {"first_token": {"scores": scores, "pred": argmax_label(scores, q.labels)}}
    return out


@register("loglik")
def loglik(shard: Shard) -> dict[str, dict[str, dict]]:
    tok = shard.scorer.tokenizer
    pairs, owner = [], []
    for qi, (q, p, ids) in enumerate(zip(shard.questions, shard.prompts, shard.prompt_ids, strict=True)):
        if q.choices is None:
            continue
        for pair in choice_pairs(tok, p.text, ids, q, shard.max_length):
            pairs.append(pair)
            owner.append(qi)
    sums = shard.scorer.continuation_logprobs(pairs)
    per_q: dict[int, list[float]] = {}
    for qi, s in zip(owner, sums, strict=True):
        per_q.setdefault(qi, []).append(s)
    out = {}
    for qi, raw in per_q.items():
        q = shard.questions[qi]
        chars = [max(1, len(c)) for c in q.choices]
        nbytes = [max(1, len(c.encode("utf-8"))) for c in q.choices]
        variants = {"loglik": raw, "loglik_norm": [s / n for s, n in zip(raw, chars, strict=True)],
                    "loglik_byte": [s / n for s, n in zip(raw, nbytes, strict=True)]}
        out[q.id] = {name: {"scores": scores, "pred": argmax_label(scores, q.labels)}
                     for name, scores in variants.items()}
    return out


@register("generate")
def generate(shard: Shard) -> dict[str, dict[str, dict]]:
    tok = shard.scorer.tokenizer
    prompts = [fit(ids, shard.max_length, shard.max_new_tokens) for ids in shard.prompt_ids]
    gens = shard.scorer.generate(prompts, shard.max_new_tokens)
    out = {}
    for q, new in zip(shard.questions, gens, strict=True):
        text = tok.decode(new, skip_special_tokens=True)
        out[q.id] = {"generate": {"text": text, "pred": parse_letter(text, q.labels)}}
    return out


def score_questions(questions: list[Question], prompts: list[Prompt], scorer: Scorer, methods: Sequence[str],
                    max_length: int, max_new_tokens: int) -> dict[str, dict]:
    """Per question id: gold, prompt hash and, per method, the choice scores and the prediction.

    Methods run (and their results are written) in `METHODS` order, whatever the order of `methods`.
    """
    prompt_ids = [encode(scorer.tokenizer, p.text) for p in prompts]
    out: dict[str, dict] = {}
    for q, p in zip(questions, prompts, strict=True):
        out[q.id] = {"id": q.id, "subject": q.subject, "category": q.category, "gold": q.answer,
                     "labels": q.labels, "num_shots": p.num_shots, "prompt_tokens": p.length,
                     "prompt_sha256": p.sha256, "too_long": p.too_long, "methods": {}}

    shard = Shard(questions, prompts, prompt_ids, scorer, max_length, max_new_tokens)
    for name, method in METHODS.items():
        if name in methods:
            for qid, results in method(shard).items():
                out[qid]["methods"].update(results)

    if "generate" in methods and "first_token" in methods:
        for q in questions:
            m = out[q.id]["methods"]
            em, ft = m["generate"]["pred"], m["first_token"]["pred"]
            m["combined"] = {"pred": em if em == q.answer else ft}
    return out
