"""research.sweep.sweep_files: sweep.csv, sweep.md and sweep.png from a multirun folder laid out as Hydra and the
pipeline write it (multirun.yaml, <job>/.hydra/overrides.yaml, <job>/summary.json, <job>/stages.json, logs)."""

import csv
import json
from pathlib import Path

import yaml
from PIL import Image

from research.sweep.columns import metric_columns
from research.sweep.jobs import FAILED, MISSING, OK, Job, Sweep, load_sweep
from research.sweep.sweep_files import _cell, markdown, plot, rows, write_all, write_csv

SIZES = "32600,32000,32300,32900"  # job k gets the k-th size: not in numeric order


def summary(final_size: int, ratio: float, loss: float, seconds: float) -> dict:
    return {"stages": {"expand_vocab": {"dir": "/cache/expand_vocab/k", "key": "k", "reused": False,
                                        "seconds": seconds, "built_seconds": seconds, "built_cpu_seconds": 1.0}},
            "overrides": [f"tokenizer.target_size={final_size}"],
            "tokenizer": {"base_size": 32000, "final_size": final_size, "new_pieces": final_size - 32000,
                          "compression": {"zh": {"chars": 100, "base_tokens_per_char": 1.0,
                                                 "expanded_tokens_per_char": ratio, "ratio": ratio}}},
            "train": {"final_loss": loss, "plugin": "ddp"}}


def job_dir(sweep: Path, name: str, overrides: list[str], summary_obj: dict | None = None) -> Path:
    d = sweep / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides), encoding="utf-8")
    if summary_obj is not None:
        (d / "summary.json").write_text(json.dumps(summary_obj), encoding="utf-8")
    return d


def vocab_sweep(tmp_path: Path) -> Path:
    """Four sizes defined; job 0 and 1 finished, job 2 failed in expand_vocab, job 3 never started."""
    sweep = tmp_path / "vocab_size" / "2026-01-01_00-00-00"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "sweeper": {"params": {"tokenizer.target_size": SIZES}},
        "overrides": {"task": ["experiment=demo", "pipeline.stages=[expand_vocab]"]}}}), encoding="utf-8")
    common = ["experiment=demo", "pipeline.stages=[expand_vocab]"]
    job_dir(sweep, "0", ["tokenizer.target_size=32600", *common], summary(32600, 0.8, 3.5, 20.25))
    job_dir(sweep, "1", ["tokenizer.target_size=32000", *common], summary(32000, 0.95, 4.0, 10.0))
    failed = job_dir(sweep, "2", ["tokenizer.target_size=32300", *common])
    (failed / "stages.json").write_text(json.dumps({"demo_inputs": {"dir": "/x", "reused": True}}), encoding="utf-8")
    (failed / "logs").mkdir()
    (failed / "logs" / "expand_vocab.log").write_text("loading\nerror: tokenizer.sources[0]: a | b broke\n",
                                                      encoding="utf-8")
    return sweep


def png_size(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        return im.size


def test_rows_sort_by_a_numeric_swept_value_and_carry_status(tmp_path):
    sweep = load_sweep(vocab_sweep(tmp_path))
    assert sweep.swept == ["tokenizer.target_size"] and sweep.expected == 4
    table, names = rows(sweep)
    assert [(r["job"], r["tokenizer.target_size"], r["status"]) for r in table] == [
        ("1", "32000", OK), ("2", "32300", FAILED), ("0", "32600", OK), ("(3)", "32900", MISSING)]
    by_job = {r["job"]: r for r in table}
    assert {k: by_job["0"][k] for k in names} == metric_columns(summary(32600, 0.8, 3.5, 20.25))
    assert by_job["1"]["tokenizer.zh.ratio"] == 0.95 and by_job["1"]["seconds"] == 10.0
    assert not set(names) & set(by_job["2"]) and not set(names) & set(by_job["(3)"])  # no figures without a summary
    assert by_job["2"]["reason"] == ("no summary.json (stages done: demo_inputs): "
                                     "error: tokenizer.sources[0]: a | b broke")
    assert by_job["(3)"]["reason"] == "defined by the sweep, no job folder"
    assert by_job["0"]["reason"] == ""
    assert names == list(metric_columns(summary(32600, 0.8, 3.5, 20.25)))  # first-seen order


def test_rows_keep_job_order_for_named_or_several_swept_values():
    jobs = [Job("0", None, ["init=zero", "data.max_length=128"], summary={"train": {"final_loss": 2.0}}),
            Job("1", None, ["init=random", "data.max_length=64"], summary={"train": {"final_loss": 1.0}}),
            Job("2", None, ["init=mvn", "data.max_length=32"], status=FAILED, reason="no summary.json")]
    two = Sweep(dir=Path("s"), jobs=jobs, expected=None, swept=["init", "data.max_length"])
    assert [r["job"] for r in rows(two)[0]] == ["0", "1", "2"]  # two swept keys: no sort
    named = Sweep(dir=Path("s"), jobs=jobs, expected=None, swept=["init"])
    table, names = rows(named)
    assert [r["job"] for r in table] == ["0", "1", "2"] and names == ["train.final_loss"]
    numeric = Sweep(dir=Path("s"), jobs=jobs, expected=None, swept=["data.max_length"])
    assert [r["job"] for r in rows(numeric)[0]] == ["2", "1", "0"]  # 32 < 64 < 128, not "128" < "32"


def test_write_all_writes_csv_md_and_png(tmp_path):
    sweep = load_sweep(vocab_sweep(tmp_path))
    paths = write_all(sweep)
    assert paths == {"csv": sweep.dir / "sweep.csv", "md": sweep.dir / "sweep.md", "png": sweep.dir / "sweep.png"}

    with paths["csv"].open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header, got = reader.fieldnames, list(reader)
    metric_names = list(metric_columns(summary(32600, 0.8, 3.5, 20.25)))
    assert header == ["job", "status", "tokenizer.target_size", *metric_names, "reason"]
    assert [(r["job"], r["status"]) for r in got] == [("1", OK), ("2", FAILED), ("0", OK), ("(3)", MISSING)]
    assert float(got[2]["tokenizer.zh.ratio"]) == 0.8 and float(got[0]["train.final_loss"]) == 4.0
    assert got[1]["tokenizer.zh.ratio"] == "" and "a | b broke" in got[1]["reason"]

    md = paths["md"].read_text(encoding="utf-8").split("\n")
    assert md == [
        "# Sweep 2026-01-01_00-00-00", "",
        "4 jobs of 4 defined: 2 ok, 2 failed or missing. Swept: tokenizer.target_size. All columns are in sweep.csv.",
        "",
        "| job | tokenizer.target_size | train.final_loss | tokenizer.zh.ratio | seconds | stages_reused | status |",
        "|---|---|---|---|---|---|---|",
        "| 1 | 32000 | 4 | 0.95 | 10 | 0 | ok |",
        "| 2 | 32300 |  |  |  |  | **failed**: no summary.json (stages done: demo_inputs): "
        "error: tokenizer.sources[0]: a \\| b broke |",
        "| 0 | 32600 | 3.5 | 0.8 | 20.2 | 0 | ok |",  # seconds are rounded to a tenth: 20.25 -> 20.2
        "| (3) | 32900 |  |  |  |  | **missing**: defined by the sweep, no job folder |",
        "",
    ]
    # Two key metrics, both changing with the size: two panels of 4.5 x 3.6 inches at 100 dpi.
    assert png_size(paths["png"]) == (900, 360)


def test_markdown_without_multirun_yaml_or_swept_values(tmp_path):
    jobs = [Job("0", None, [], summary={"eval": {"questions": 12345}}), Job("1", None, [], summary={})]
    sweep = Sweep(dir=tmp_path / "one", jobs=jobs, expected=None, swept=[])
    table, names = rows(sweep)
    md = markdown(sweep, table, names)
    assert "2 jobs: 2 ok, 0 failed or missing. Swept: (nothing varies)." in md
    assert "| job | status |" in md and "| 0 | ok |" in md


def test_plot_drops_metrics_the_sweep_does_not_change(tmp_path):
    same_tok = [Job(str(i), None, [f"init={s}"], summary=summary(32300, 0.8, loss, 1.0))
                for i, (s, loss) in enumerate([("zero", 3.0), ("random", 3.5), ("mvn", 2.5)])]
    sweep = Sweep(dir=tmp_path, jobs=same_tok, expected=3, swept=["init"])
    table, names = rows(sweep)
    plot(tmp_path / "a.png", sweep, table, names)
    assert png_size(tmp_path / "a.png") == (450, 360)  # only train.final_loss varies: one panel
    varying = [Job(str(i), None, [f"init={s}"], summary=summary(32300, r, loss, 1.0))
               for i, (s, r, loss) in enumerate([("zero", 0.8, 3.0), ("random", 0.7, 3.5)])]
    sweep = Sweep(dir=tmp_path, jobs=varying, expected=2, swept=["init"])
    table, names = rows(sweep)
    plot(tmp_path / "b.png", sweep, table, names)
    assert png_size(tmp_path / "b.png") == (900, 360)


def test_plot_with_no_finished_job_is_a_placeholder(tmp_path):
    jobs = [Job("0", None, ["init=zero"], status=FAILED, reason="no summary.json"),
            Job("(1)", None, ["init=mvn"], status=MISSING, reason="defined by the sweep, no job folder")]
    sweep = Sweep(dir=tmp_path, jobs=jobs, expected=2, swept=["init"])
    table, names = rows(sweep)
    assert names == []
    plot(tmp_path / "p.png", sweep, table, names)
    assert png_size(tmp_path / "p.png") == (450, 360)
    assert "0 ok, 2 failed or missing" in markdown(sweep, table, names)


def test_cells_are_compact_and_escape_pipes():
    assert [_cell(x) for x in (0.123456, 2.5, 3.0, 100.0, 0.00001, 12345.6, 1e9)] == \
        ["0.1235", "2.5", "3", "100", "0", "12,346", "1,000,000,000"]
    assert [_cell(x) for x in (0, 9999, 10000, 123456, -20000)] == ["0", "9999", "10,000", "123,456", "-20,000"]
    assert _cell("a|b") == "a\\|b" and _cell("") == "" and _cell(None) == "None"


def test_write_csv_fills_missing_cells_and_ignores_extra_keys(tmp_path):
    path = tmp_path / "t.csv"
    write_csv(path, [{"job": "0", "x": 1.5, "extra": "dropped"}, {"job": "1"}], ["job", "x"])
    assert path.read_text(encoding="utf-8").splitlines() == ["job,x", "0,1.5", "1,"]
