"""research.eval.tables: table.md (per method, category and subject; held-out text) and the per-dataset bar chart."""

import numpy as np
import pytest
from PIL import Image

from research.eval.accuracy import accuracy
from research.eval.tables import METHOD_TITLES, bar_chart, pct, table


def by_method():
    """Two methods on four physics/history questions; loglik also scored one more history question and has no
    Humanities category (so its cell is empty)."""
    return {
        "first_token": {"micro": 0.5, "macro": 0.5, "n": 4,
                        "subjects": {"physics": {"acc": 0.5, "n": 2}, "history": {"acc": 0.5, "n": 2}},
                        "categories": {"STEM": {"acc": 0.5, "n": 2}, "Humanities": {"acc": 0.5, "n": 2}}},
        "loglik": {"micro": 0.6, "macro": 2 / 3, "n": 5,
                   "subjects": {"physics": {"acc": 1.0, "n": 2}, "history": {"acc": 1 / 3, "n": 3}},
                   "categories": {"STEM": {"acc": 1.0, "n": 2}}},
    }


def test_pct_is_a_percentage_with_two_decimals():
    assert [pct(x) for x in (0.0, 0.5, 1 / 3, 2 / 3, 1.0, 0.123456)] == \
        ["0.00", "50.00", "33.33", "66.67", "100.00", "12.35"]


def test_table_lists_methods_categories_and_subjects():
    notes = {"cmmlu": {"questions": 5, "subjects": 2, "split": "test", "rejected": 1, "dev_from_test": 3}}
    md = table({"cmmlu": by_method()}, {}, notes)
    assert md.split("\n") == [
        "## cmmlu", "",
        "5 questions, 2 subjects, split test, 1 rows rejected, 3 test questions used as shots.", "",
        "| method | micro | macro | Humanities | STEM | n |",
        "|---|---|---|---|---|---|",
        "| first-token | 50.00 | 50.00 | 50.00 | 50.00 | 4 |",
        "| loglik (acc) | 60.00 | 66.67 |  | 100.00 | 5 |",
        "",
        "| subject | n | first-token | loglik (acc) |",
        "|---|---|---|---|",
        "| history | 3 | 50.00 | 33.33 |",  # n: the most questions any method scored
        "| physics | 2 | 50.00 | 100.00 |",
        "",
    ]


def test_every_row_has_as_many_cells_as_its_header():
    md = table({"cmmlu": by_method()}, {}, {})
    blocks = [b for b in md.split("\n\n") if b.startswith("|")]
    assert len(blocks) == 2
    for block in blocks:
        rows = block.splitlines()
        widths = {r.count("|") for r in rows}
        assert len(widths) == 1, rows


def test_unknown_method_keeps_its_name_and_missing_notes_default():
    metrics = {"gaokao": {"vote": {"micro": 0.25, "macro": 0.25, "n": 4, "subjects": {"math": {"acc": 0.25, "n": 4}},
                                   "categories": {}}}}
    lines = table(metrics, {}, {}).split("\n")
    assert lines[2] == "0 questions, 0 subjects, split None, 0 rows rejected, 0 test questions used as shots."
    assert lines[4:7] == ["| method | micro | macro | n |", "|---|---|---|---|", "| vote | 25.00 | 25.00 | 4 |"]
    assert "| subject | n | vote |" in lines and "| math | 4 | 25.00 |" in lines


def test_heldout_section_formats_each_language():
    held = {"zh": {"tokens": 1200, "bytes": 9000, "loss_per_token": 2.345678, "perplexity": 10.4389,
                   "bits_per_byte": 0.45123},
            "en": {"tokens": 80, "bytes": 300, "loss_per_token": 3.0, "perplexity": 20.0855369, "bits_per_byte": 1.0}}
    md = table({}, held, {})
    assert md.split("\n") == [
        "## held-out text", "",
        "| language | tokens | bytes | loss/token | perplexity | bits/byte |", "|---|---|---|---|---|---|",
        "| zh | 1200 | 9000 | 2.3457 | 10.439 | 0.4512 |",
        "| en | 80 | 300 | 3.0000 | 20.086 | 1.0000 |",
        "",
    ]
    assert table({}, {}, {}) == ""


def test_table_of_real_accuracy_output():
    """The metrics as evaluate computes them from per-question results."""
    def q(subject, category, **preds):
        return {"subject": subject, "category": category, "gold": "A",
                "methods": {m: {"pred": p} for m, p in preds.items()}}

    results = [q("physics", "STEM", first_token="A", loglik_norm="A"), q("physics", "STEM", first_token="B",
                                                                         loglik_norm="A"),
               q("chemistry", "STEM", first_token="A", loglik_norm="C"), q("poetry", "", first_token="A")]
    md = table({"ceval": accuracy(results)}, {}, {"ceval": {"questions": 4, "subjects": 3, "split": "val"}})
    # first_token: 3/4 right; subjects physics 1/2, chemistry 1/1, poetry 1/1 -> macro 5/6; STEM 2/3.
    # loglik_norm: 2/3 right (poetry has no prediction); physics 2/2, chemistry 0/1 -> macro 1/2; STEM 2/3.
    assert "| first-token | 75.00 | 83.33 | 66.67 | 4 |" in md
    assert "| loglik/char (acc_norm) | 66.67 | 50.00 | 66.67 | 3 |" in md
    assert "| poetry | 1 | 100.00 |  |" in md and "| chemistry | 1 | 100.00 | 0.00 |" in md
    assert set(METHOD_TITLES) >= {"first_token", "loglik", "loglik_norm", "loglik_byte", "generate", "combined"}


def image(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        return im.size, np.asarray(im.convert("L"))


def test_bar_chart_by_category_is_a_png_of_the_minimum_size(tmp_path):
    path = tmp_path / "cmmlu.png"
    bar_chart(path, "cmmlu", by_method())
    size, pixels = image(path)
    assert size == (600, 400)  # 6 x 4 inches at 100 dpi: 3 groups x 2 methods stays at the minimum width
    assert pixels.min() < 100 and pixels.max() == 255  # something is drawn on a white background


def test_bar_chart_without_categories_groups_by_subject_and_widens(tmp_path):
    subjects = {f"subject_{i}": {"acc": i / 10, "n": 3} for i in range(8)}
    methods = {m: {"micro": 0.4, "macro": 0.4, "n": 24, "subjects": subjects, "categories": {}}
               for m in ("first_token", "loglik", "loglik_norm")}
    path = tmp_path / "mmlu.png"
    bar_chart(path, "mmlu", methods)
    (w, h), _ = image(path)
    # 8 subjects + "all" = 9 groups of 3 bars: 1.2 * 9 * 3 * 0.35 + 3 inches = 14.34 inches.
    assert (w, h) == (1434, 400)


@pytest.mark.parametrize("n_methods", [1, 4])
def test_bar_chart_handles_any_number_of_methods(tmp_path, n_methods):
    one = by_method()["first_token"]
    methods = {f"m{i}": one for i in range(n_methods)}
    bar_chart(tmp_path / "x.png", "x", methods)
    assert image(tmp_path / "x.png")[0][1] == 400
