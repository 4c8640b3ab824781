"""Prompt text, language headers, and shots dropped from the end until the prompt fits."""

from research.eval.prompts import build_prompt, format_question
from research.eval.question import Question


def q(i, lang="en", subject="high_school_geography"):
    return Question(id=f"q{i}", subject=subject, question=f"Question {i}?", choices=["one", "two", "three", "four"],
                    labels=list("ABCD"), answer="BCDA"[i % 4], language=lang)


def words(text):
    return len(text.split())


def test_english_prompt_format():
    p = build_prompt(q(0), [q(1), q(2)], words, 10_000, 1)
    assert p.num_shots == 2 and not p.too_long
    assert p.text == (
        "The following are multiple choice questions (with answers) about high school geography.\n\n"
        "Question 1?\nA. one\nB. two\nC. three\nD. four\nAnswer: C\n\n"
        "Question 2?\nA. one\nB. two\nC. three\nD. four\nAnswer: D\n\n"
        "Question 0?\nA. one\nB. two\nC. three\nD. four\nAnswer:")


def test_chinese_header_and_cue():
    text = build_prompt(q(0, "zh", "中国历史"), [q(1, "zh")], words, 10_000, 1).text
    assert text.startswith("以下是关于中国历史的单项选择题，请直接给出正确答案的选项。\n\n")
    assert "答案：C\n\n" in text and text.endswith("答案：")


def test_shots_dropped_from_the_end_until_it_fits():
    shots = [q(i) for i in range(1, 6)]
    full = build_prompt(q(0), shots, words, 10_000, 0)
    budget = full.length - 5  # one shot too many
    p = build_prompt(q(0), shots, words, budget + 3, 3)
    assert p.num_shots == 4 and p.length + 3 <= budget + 3
    assert p.text == build_prompt(q(0), shots[:4], words, 10_000, 0).text
    zero = build_prompt(q(0), shots, words, words(format_question(q(0), False)) + 20, 1)
    assert zero.num_shots == 0 and not zero.too_long
    tiny = build_prompt(q(0), shots, words, 3, 1)
    assert tiny.too_long and tiny.num_shots == 0


def test_prompt_hash_is_deterministic():
    a = build_prompt(q(0), [q(1)], words, 10_000, 1)
    b = build_prompt(q(0), [q(1)], words, 10_000, 1)
    assert a.sha256 == b.sha256 != build_prompt(q(0), [q(2)], words, 10_000, 1).sha256
