"""Loaders on fixtures in each benchmark's native released format, good and malformed, and the packaged MMLU."""

import pytest

from research.config.eval import DatasetSpec
from research.errors import ConfigError, GraftError
from research.eval.datasets import DATASETS, get, load_benchmark
from research.eval.datasets.gaokao import split_options
from research.eval.datasets.mmlu_categories import CATEGORIES
from research.rejects import Rejects
from tests.eval.conftest import FIXTURES


def load(name, path, **kw):
    rejects = Rejects("dataset")
    spec_kw = {k: kw.pop(k) for k in ("split", "subjects", "limit") if k in kw}
    return load_benchmark(DatasetSpec(name=name, path=str(path) if path else None, **spec_kw), rejects, **kw), rejects


def reasons(rejects):
    return [(r["file"].rsplit("/", 1)[-1], r["line"], r["reason"]) for r in rejects.rows]


def test_unknown_name_lists_the_registry():
    assert {"mmlu", "cmmlu", "ceval", "agieval", "gaokao", "generic"} <= set(DATASETS)
    assert all(name == module.NAME for name, module in DATASETS.items())
    with pytest.raises(GraftError, match=f"unknown dataset 'mmmlu'; known: {', '.join(sorted(DATASETS))}$"):
        get("mmmlu")
    with pytest.raises(ConfigError, match=f"eval.datasets\\[\\].name='mmmlu': unknown dataset; known: {', '.join(DATASETS)}$"):
        DatasetSpec(name="mmmlu")


def test_packaged_mmlu_counts_and_categories():
    b, rejects = load("mmlu", None)
    # 14,044 lines = 14,042 questions + 2 stray header rows; 5 per subject become the shot pool.
    assert [r["reason"] for r in rejects.rows] == ["stray header row (correct_answer='answer')"] * 2
    assert b.notes["subjects"] == 57 and b.notes["dev_from_test"] == 57 * 5
    assert len(b.questions) == 14042 - 285
    assert len({q.id for q in b.questions}) == len(b.questions)
    assert set(CATEGORIES) == {q.subject for q in b.questions}
    assert set(CATEGORIES.values()) == {"STEM", "humanities", "social sciences", "other"}
    scored = {q.id for q in b.questions}
    for _subject, shots in b.dev.items():
        assert len(shots) == 5 and not scored & {q.id for q in shots}
    b2, _ = load("mmlu", None, limit_per_subject=3)
    assert len(b2.questions) == 57 * 3
    assert {q.id for qs in b2.dev.values() for q in qs} == {q.id for qs in b.dev.values() for q in qs}


def test_packaged_mmlu_shot_pool_follows_seed():
    a, _ = load("mmlu", None, subjects=["anatomy"], seed=0)
    b, _ = load("mmlu", None, subjects=["anatomy"], seed=0)
    c, _ = load("mmlu", None, subjects=["anatomy"], seed=1)
    ids = lambda x: [q.id for q in x.dev["anatomy"]]  # noqa: E731
    assert ids(a) == ids(b) != ids(c)


def test_mmlu_native_uses_its_dev_split():
    b, rejects = load("mmlu", FIXTURES / "mmlu_native")
    assert not rejects.rows and b.notes["dev_from_test"] == 0
    assert [len(b.dev[s]) for s in ("abstract_algebra", "marketing")] == [3, 2]
    assert len(b.questions) == 5 + 4
    q = b.questions[0]
    assert (q.id, q.answer, q.choices, q.category) == ("abstract_algebra/test/1", "B", ["1", "0", "-1", "none"], "STEM")


def test_mmlu_native_malformed_rows_are_rejected_with_line():
    b, rejects = load("mmlu", FIXTURES / "bad" / "mmlu_native")
    assert reasons(rejects) == [
        ("marketing_test.csv", 2, "expected 6 columns (question,A,B,C,D,answer), got 5"),
        ("marketing_test.csv", 3, "answer 'E' is not among the choices ABCD"),
        ("marketing_test.csv", 4, "missing choice text"),
    ]
    assert len(b.questions) + b.notes["dev_from_test"] == 2


def test_cmmlu_native():
    b, rejects = load("cmmlu", FIXTURES / "cmmlu")
    assert not rejects.rows
    q = b.questions[0]
    assert (q.language, q.subject, q.id, q.answer) == ("zh", "chinese_general_knowledge", "chinese_general_knowledge/test/0", "B")
    assert len(b.questions) == 4 and len(b.dev["chinese_general_knowledge"]) == 2


def test_cmmlu_malformed():
    b, rejects = load("cmmlu", FIXTURES / "bad" / "cmmlu")
    got = reasons(rejects)
    assert got[0][:2] == ("chinese_general_knowledge.csv", 3) and got[0][2].startswith("duplicate id")
    assert got[1] == ("chinese_general_knowledge.csv", 4, "answer 'E' is not among the choices ABCD")
    assert got[2][:2] == ("wrong_header.csv", 1) and "expected ',Question,A,B,C,D,Answer'" in got[2][2]
    assert len(b.questions) == 2


def test_ceval_scores_val_by_default_and_test_has_no_answers():
    b, rejects = load("ceval", FIXTURES / "ceval")
    assert b.split == "val" and len(b.questions) == 4 and len(b.dev["high_school_geography"]) == 2
    # The released test split withholds answers: every row is rejected with that reason, none is scored.
    assert len(rejects.rows) == 4 and all("answer ''" in r["reason"] for r in rejects.rows)
    with pytest.raises(GraftError, match="no valid questions in split 'test'"):
        load("ceval", FIXTURES / "ceval", split="test")


def test_ceval_malformed():
    b, rejects = load("ceval", FIXTURES / "bad" / "ceval")
    got = reasons(rejects)
    assert ("high_school_geography_val.csv", 3, "answer '' is not among the choices ABCD") in got
    assert ("high_school_geography_val.csv", 5, "expected 8 columns, got 4") in got
    assert any(f == "physics_val.csv" and "header lacks ['D']" in r for f, _, r in got)
    assert [q.id for q in b.questions] == ["high_school_geography/val/0", "high_school_geography/val/2"]


def test_agieval_native():
    b, rejects = load("agieval", FIXTURES / "agieval", dev_shots_from_test=0)
    assert not rejects.rows
    by_id = {q.id: q for q in b.questions}
    q = by_id["lsat-ar/test/1"]
    assert q.choices[0] == "F, G, H, J, K" and len(q.choices) == 5 and q.passage.startswith("Five students")
    assert q.language == "en" and by_id["gaokao-history/test/2"].language == "zh"
    assert by_id["gaokao-history/test/2"].choices == ["洛阳", "长安", "开封", "南京"]


def test_agieval_malformed():
    b, rejects = load("agieval", FIXTURES / "bad" / "agieval", dev_shots_from_test=0)
    got = reasons(rejects)
    assert got[0] == ("gaokao-physics.jsonl", 2, "multi-answer question (label ['A', 'C']), only single choice is scored")
    assert got[1] == ("gaokao-physics.jsonl", 3, "no options (cloze question, not multiple choice)")
    assert got[2] == ("gaokao-physics.jsonl", 4, "answer 'D' is not among the choices AB")
    assert got[3][:2] == ("gaokao-physics.jsonl", 5) and got[3][2].startswith("bad JSON")
    assert [q.id for q in b.questions] == ["gaokao-physics/test/1"]


def test_gaokao_native_splits_options_from_text():
    b, rejects = load("gaokao", FIXTURES / "gaokao", dev_shots_from_test=0)
    assert not rejects.rows
    q0, q1, q2 = b.questions
    assert q0.subject == "History" and q0.question.endswith("（　　）")
    assert q0.choices == ["丞相", "太尉", "御史大夫", "郡守"] and q0.answer == "C"
    assert q1.choices == ["西汉", "东汉", "北宋", "南宋"]
    assert q2.choices is None and q2.labels == list("ABCD") and q2.answer == "D"


def test_gaokao_malformed():
    b, rejects = load("gaokao", FIXTURES / "bad" / "gaokao", dev_shots_from_test=0)
    got = reasons(rejects)
    assert got[0][0] == "2010-2022_History_MCQs.json" and got[0][2].startswith("multi-answer")
    assert got[1][2] == "answer 'F' is not among the choices ABCD"
    assert got[2][2].startswith("duplicate id 'History/test/0'")
    assert got[3][:2] == ("2010-2022_Math_MCQs.json", 3) and got[3][2].startswith("bad JSON")
    assert len(b.questions) == 1


def test_split_options_needs_markers_in_order():
    assert split_options("问题 A．甲 B．乙") == ("问题", ["甲", "乙"])
    assert split_options("无选项") == ("无选项", None)


def test_generic_jsonl_and_csv():
    b, rejects = load("generic", FIXTURES / "generic")
    assert not rejects.rows and b.notes["dev_from_test"] == 0
    assert [q.id for q in b.questions] == ["q1", "q2", "q3"] and [q.id for q in b.dev["arithmetic"]] == ["d1"]
    assert b.questions[0].category == "STEM" and b.questions[0].labels == ["A", "B", "C"]
    c, rejects = load("generic", FIXTURES / "generic_csv", dev_shots_from_test=0)
    assert not rejects.rows and c.questions[1].choices == ["Sirius", "Proxima Centauri", "The Sun", "Vega"]


def test_generic_malformed():
    b, rejects = load("generic", FIXTURES / "bad" / "generic", dev_shots_from_test=0)
    got = reasons(rejects)
    assert got[0][:2] == ("questions.jsonl", 2) and got[0][2] == "duplicate id 'q1' (first at " + str(
        FIXTURES / "bad" / "generic" / "questions.jsonl") + ":1)"
    assert got[1] == ("questions.jsonl", 3, "missing choices")
    assert got[2] == ("questions.jsonl", 4, "answer 'C' is not among the choices AB")
    assert got[3][:2] == ("questions.jsonl", 6) and got[3][2].startswith("bad JSON")
    assert got[4] == ("questions.jsonl", 7, "expected a JSON object, got list")
    assert [q.id for q in b.questions] == ["q1", "q3"]


def test_missing_paths_and_subjects_are_one_line_errors(tmp_path):
    with pytest.raises(GraftError, match=r"eval.datasets\[cmmlu\].path is required"):
        load("cmmlu", None)
    with pytest.raises(GraftError, match="not found"):
        load("ceval", tmp_path / "nope")
    with pytest.raises(GraftError, match="expected split folders dev/test"):
        load("cmmlu", tmp_path)
    with pytest.raises(GraftError, match=r"subjects: unknown \['astrology'\]; known: abstract_algebra, marketing"):
        load("mmlu", FIXTURES / "mmlu_native", subjects=["astrology"])
