"""research.orchestrate.run_report: the key figures the pipeline collects from each stage's summary.json (and
train's metrics.jsonl), and report/report.md with its plots. Stage folders are laid out as the stages write them:
<cache>/<stage>/<key>/summary.json, train's metrics.jsonl, evaluate's table.md and <dataset>.png."""

import json
from pathlib import Path

import pytest
from PIL import Image

from research.eval.tables import table
from research.orchestrate.run_report import (
    LOSS_WINDOW,
    key_figures,
    plot_compression,
    plot_loss,
    plot_stage_times,
    read_json,
    read_metrics,
    stage_losses,
    write_report,
)
from research.sweep.columns import metric_columns

STAGES = ["demo_inputs", "expand_vocab", "init_model", "prepare_data", "train", "evaluate"]
OVERRIDES = ["experiment=demo", "init=mean", "tokenizer.target_size=32500"]
COMPRESSION = {
    "zh": {"lines": 20, "chars": 12345, "base_tokens": 15431, "expanded_tokens": 9258,
           "base_tokens_per_char": 1.25, "expanded_tokens_per_char": 0.75, "ratio": 0.6},
    "en": {"lines": 30, "chars": 5000, "base_tokens": 1250, "expanded_tokens": 1250,
           "base_tokens_per_char": 0.25, "expanded_tokens_per_char": 0.25, "ratio": 1.0},
}


def write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def record(step: int, stage: str, loss: float, **cats) -> dict:
    """One line of train's metrics.jsonl."""
    return {"step": step, "stage": stage, "bucket": 0, "lr": 1e-4, "loss": loss, "grad_norm": 1.0, "tokens": 256,
            "tokens_per_s": 1000.0, "step_time_s": 0.25, "trainable_params": 100, "peak_memory_gb": 0.5,
            "tokens_seen": {stage: 256 * step}, **{f"loss/{c}": v for c, v in cats.items()}}


def train_records() -> list[dict]:
    """20 warm-up steps (zh_news loss on even steps only, en_wiki on every step) then 5 replay steps."""
    recs = [record(s, "warmup", 10.0 - 0.25 * s, en_wiki=9.0 - 0.25 * s,
                   **({"zh_news": 11.0 - 0.25 * s} if s % 2 == 0 else {})) for s in range(1, 21)]
    recs += [record(s, "replay", 6.0 - 0.5 * (s - 20), zh_news=7.0) for s in range(21, 26)]
    return recs


@pytest.fixture
def run(tmp_path):
    """A finished pipeline run: the six stage folders in a cache beside the run root, and stages.json's content."""
    cache, root = tmp_path / "cache", tmp_path / "runs" / "demo"
    root.mkdir(parents=True)
    dirs = {name: cache / name / f"k{i}" for i, name in enumerate(STAGES)}
    write(dirs["demo_inputs"] / "summary.json", {
        "base_model_parameters": 1234567, "base_model_pretraining": {
            "steps": 5, "sequences": 10, "en_tokens": 9800, "zh_tokens": 200, "zh_share": 0.02, "loss_first": 10.5,
            "loss_last": 9.25}})
    write(dirs["expand_vocab"] / "summary.json", {"base_size": 32000, "final_size": 32500, "new_pieces": 500,
                                                  "compression": COMPRESSION, "sources": [{"kind": "wordlist"}]})
    write(dirs["init_model"] / "summary.json", {"strategy": "mean", "old_size": 32000, "new_size": 32500,
                                                "parameters": 2000000, "tied": False})
    write(dirs["prepare_data"] / "summary.json", {"records_in": 300, "records_kept": 280, "records_rejected": 20,
                                                  "tokens": 71234, "packs": 300, "packing_efficiency": 0.9275,
                                                  "num_buckets": 5})
    write(dirs["train"] / "summary.json", {"steps": 25, "total_steps": 25, "completed": True, "plugin": "ddp",
                                           "world_size": 1, "tokens_seen": {"warmup": 5120, "replay": 1280},
                                           "stages": [{"name": "warmup", "start": 0, "steps": 20}],
                                           "tokens_per_s": 1234.5678, "final_loss": 3.5, "mfu": None})
    (dirs["train"] / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_records()) + "\n",
                                                 encoding="utf-8")
    mmlu = {"micro": 0.25, "macro": 0.3, "n": 4, "categories": {"STEM": 0.5}}
    write(dirs["evaluate"] / "summary.json", {
        "questions": 8, "rejected": 0,
        "datasets": {"mmlu": {"notes": {"questions": 4, "subjects": 2, "split": "test"},
                              "first_token": mmlu, "loglik": dict(mmlu, micro=0.5)}},
        "heldout": {"zh": {"tokens": 100, "bytes": 900, "chars": 300, "loss_per_token": 3.0, "perplexity": 20.0855,
                           "bits_per_byte": 0.4809, "bytes_per_token": 9.0, "path": "/data/zh.txt"}}})
    by_method = {"first_token": {"micro": 0.25, "macro": 0.3, "n": 4, "subjects": {"physics": {"acc": 0.25, "n": 4}},
                                 "categories": {"STEM": {"acc": 0.25, "n": 4}}}}
    (dirs["evaluate"] / "table.md").write_text(table({"mmlu": by_method}, {}, {}), encoding="utf-8")
    (dirs["evaluate"] / "mmlu.png").write_bytes(b"\x89PNG\r\n\x1a\nmmlu")
    stages = {name: {"dir": str(d), "key": f"k{i}", "reused": name == "demo_inputs", "seconds": 0.31 if i == 0
                     else 10.0 * i, "built_seconds": 42.0 if i == 0 else 10.0 * i, "built_cpu_seconds": 40.0}
              for i, (name, d) in enumerate(dirs.items())}
    return {"root": root, "cache": cache, "dirs": {k: str(v) for k, v in dirs.items()}, "stages": stages}


# ---- reading -----------------------------------------------------------------------------------------------------

def test_read_json_is_empty_for_missing_or_corrupt_files(tmp_path):
    assert read_json(tmp_path / "none.json") == {}
    (tmp_path / "bad.json").write_text("{half", encoding="utf-8")
    assert read_json(tmp_path / "bad.json") == {}
    assert read_json(write(tmp_path / "ok.json", {"a": [1, "é"]})) == {"a": [1, "é"]}


def test_read_metrics_skips_blank_lines_and_needs_no_file(run, tmp_path):
    assert read_metrics(tmp_path) == []
    assert read_metrics(run["dirs"]["train"]) == train_records()


# ---- stage losses ----------------------------------------------------------------------------------------------

def test_stage_losses_average_the_last_tenth_of_each_stage():
    got = stage_losses(train_records())
    assert list(got) == ["warmup", "replay"]
    w, r = got["warmup"], got["replay"]
    # warmup: 20 steps -> the last 2 (steps 19, 20); zh_news only on step 20.
    assert (w["steps"], w["last_step"], w["window"]) == (20, 20, 2)
    assert w["loss"] == pytest.approx(((10 - 0.25 * 19) + (10 - 0.25 * 20)) / 2)
    assert w["by_category"] == pytest.approx({"en_wiki": ((9 - 4.75) + (9 - 5)) / 2, "zh_news": 11 - 5})
    assert list(w["by_category"]) == ["en_wiki", "zh_news"]
    # replay: 5 steps -> a tenth rounds to 0, so the last step alone.
    assert (r["steps"], r["last_step"], r["window"]) == (5, 25, 1)
    assert r["loss"] == pytest.approx(6 - 0.5 * 5) and r["by_category"] == {"zh_news": 7.0}
    assert LOSS_WINDOW == 0.1


@pytest.mark.parametrize(("n", "window"), [(1, 1), (9, 1), (14, 1), (16, 2), (40, 4), (100, 10)])
def test_stage_loss_window_is_a_tenth_of_the_steps_at_least_one(n, window):
    recs = [record(s, "only", float(s)) for s in range(1, n + 1)]
    (got,) = stage_losses(recs).values()
    assert got["window"] == window
    assert got["loss"] == pytest.approx(sum(range(n - window + 1, n + 1)) / window)
    assert got["by_category"] == {}


def test_stage_losses_of_nothing_is_empty():
    assert stage_losses([]) == {}


# ---- key figures -------------------------------------------------------------------------------------------------

def test_key_figures_collect_each_stage_headline(run):
    fig = key_figures(run["stages"], run["dirs"], OVERRIDES)
    assert list(fig) == ["stages", "overrides", "inputs", "tokenizer", "init", "data", "train", "eval"]
    assert fig["stages"] == run["stages"] and fig["overrides"] == OVERRIDES
    assert fig["inputs"] == {"base_model_parameters": 1234567, "base_model_pretraining": {
        "steps": 5, "sequences": 10, "en_tokens": 9800, "zh_tokens": 200, "zh_share": 0.02, "loss_first": 10.5,
        "loss_last": 9.25}}
    assert fig["tokenizer"] == {"base_size": 32000, "final_size": 32500, "new_pieces": 500,
                                "compression": COMPRESSION}
    assert fig["init"] == {"strategy": "mean", "old_size": 32000, "new_size": 32500, "parameters": 2000000}
    assert fig["data"] == {"records_in": 300, "records_kept": 280, "tokens": 71234, "packs": 300,
                           "packing_efficiency": 0.9275, "num_buckets": 5}
    t = fig["train"]
    assert {k: v for k, v in t.items() if k != "stages"} == {
        "steps": 25, "final_loss": 3.5, "tokens_per_s": 1234.5678, "tokens_seen": {"warmup": 5120, "replay": 1280},
        "plugin": "ddp", "world_size": 1}
    assert t["stages"] == stage_losses(train_records())  # from metrics.jsonl, not summary.json's stage list
    assert fig["eval"] == {
        "questions": 8,
        "datasets": {"mmlu": {"first_token": {"micro": 0.25, "macro": 0.3, "n": 4},
                              "loglik": {"micro": 0.5, "macro": 0.3, "n": 4}}},  # no notes, no categories
        "heldout": {"zh": {"perplexity": 20.0855, "bits_per_byte": 0.4809, "loss_per_token": 3.0, "tokens": 100}}}
    assert json.loads(json.dumps(fig)) == fig  # summary.json-ready
    cols = metric_columns(fig)  # and what a sweep reads back from it
    assert cols["train.final_loss"] == 3.5 and cols["eval.datasets.mmlu.loglik.micro"] == 0.5
    assert cols["stages_reused"] == 1


def test_key_figures_skip_stages_that_did_not_run_or_left_no_summary(run, tmp_path):
    dirs = {"expand_vocab": run["dirs"]["expand_vocab"], "train": str(tmp_path / "empty_train")}
    stages = {k: run["stages"][k] for k in dirs}
    fig = key_figures(stages, dirs, [])
    assert list(fig) == ["stages", "overrides", "tokenizer"]
    assert fig["overrides"] == []
    Path(run["dirs"]["evaluate"], "summary.json").write_text("{torn", encoding="utf-8")
    assert "eval" not in key_figures(run["stages"], run["dirs"], OVERRIDES)


def test_key_figures_tolerate_missing_optional_sections(tmp_path):
    d = tmp_path / "eval"
    write(d / "summary.json", {"questions": 0})
    fig = key_figures({}, {"evaluate": str(d)}, [])
    assert fig["eval"] == {"questions": 0, "datasets": {}, "heldout": {}}


# ---- plots -------------------------------------------------------------------------------------------------------

def png_size(path: Path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        return im.size


def test_plots_are_skipped_without_data(tmp_path):
    assert plot_loss([], tmp_path / "a.png") is False
    assert plot_compression({}, tmp_path / "b.png") is False
    assert plot_stage_times({}, tmp_path / "c.png") is False
    assert list(tmp_path.iterdir()) == []


def test_plots_write_pngs_of_their_figure_size(run, tmp_path):
    assert plot_loss(train_records(), tmp_path / "loss.png") is True
    assert png_size(tmp_path / "loss.png") == (880, 495)  # 8 x 4.5 inches at 110 dpi
    assert plot_compression(COMPRESSION, tmp_path / "comp.png") is True
    assert png_size(tmp_path / "comp.png") == (660, 440)
    assert plot_stage_times(run["stages"], tmp_path / "times.png") is True
    assert png_size(tmp_path / "times.png") == (770, 385)


# ---- report.md ---------------------------------------------------------------------------------------------------

def test_report_has_every_section_with_its_figures(run):
    fig = key_figures(run["stages"], run["dirs"], OVERRIDES)
    stale = run["root"] / "report" / "old.png"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    path = write_report(run["root"], fig, run["dirs"])
    out = run["root"] / "report"
    assert path == out / "report.md"
    assert not stale.exists()  # the folder is rebuilt
    assert sorted(p.name for p in out.iterdir()) == ["compression.png", "eval_mmlu.png", "loss.png", "report.md",
                                                     "stage_times.png"]
    assert (out / "eval_mmlu.png").read_bytes() == b"\x89PNG\r\n\x1a\nmmlu"
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[:6] == ["# Run report: demo", "",
                         "Overrides: `experiment=demo` `init=mean` `tokenizer.target_size=32500`", "", "## Stages", ""]
    assert lines[6:10] == [
        "| stage | key | reused | seconds | built in (s) | built with CPU (s) | folder |",
        "|---|---|---|---|---|---|---|",
        "| demo_inputs | k0 | yes | 0.3 | 42.0 | 40.0 | `../../cache/demo_inputs/k0` |",
        "| expand_vocab | k1 | no | 10.0 | 10.0 | 40.0 | `../../cache/expand_vocab/k1` |",
    ]
    for expected in [
        "![time per stage](stage_times.png)",
        "## Base model",
        "1,234,567 parameters, pre-trained 5 steps (Chinese share 0.02): loss 10.5000 -> 9.2500.",
        "## Tokenizer",
        "32,000 -> 32,500 pieces (500 new).",
        "| language | chars | base tokens/char | expanded tokens/char | ratio |",
        "| zh | 12,345 | 1.2500 | 0.7500 | 0.6000 |",
        "| en | 5,000 | 0.2500 | 0.2500 | 1.0000 |",
        "![compression by language](compression.png)",
        "## Embedding initialisation",
        "`mean`: 32,000 -> 32,500 rows, 2,000,000 parameters.",
        "## Data",
        "300 records in, 280 kept; 71,234 tokens in 300 packs over 5 buckets (packing efficiency 0.9275).",
        "## Training",
        "25 steps, plugin `ddp` on 1 process(es), 1234.6 tokens/s. Loss at the end of each stage (mean over its "
        "last 10% of steps):",
        "| stage | steps | loss | en_wiki | zh_news |",
        f"| warmup | 20 | {(5.25 + 5.0) / 2:.4f} | {(4.25 + 4.0) / 2:.4f} | 6.0000 |",
        "| replay | 5 | 3.5000 |  | 7.0000 |",
        "![loss by stage and category](loss.png)",
        "## Evaluation",
        "### mmlu",  # table.md's headings, one level down
        "| first-token | 25.00 | 30.00 | 25.00 | 4 |",
        "![mmlu](eval_mmlu.png)",
    ]:
        assert expected in lines, expected
    order = [lines.index(h) for h in ("## Stages", "## Base model", "## Tokenizer", "## Embedding initialisation",
                                      "## Data", "## Training", "## Evaluation")]
    assert order == sorted(order)
    assert not any(ln.startswith("## ") and ln[3:] == "mmlu" for ln in lines)


def test_report_of_a_tokenizer_only_run(run):
    dirs = {"expand_vocab": run["dirs"]["expand_vocab"]}
    stages = {"expand_vocab": dict(run["stages"]["expand_vocab"], reused=True, built_seconds=None,
                                   built_cpu_seconds=None)}
    path = write_report(run["root"], key_figures(stages, dirs, []), dirs)
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    assert "Overrides: (none)" in lines
    assert "| expand_vocab | k1 | yes | 10.0 |  |  | `../../cache/expand_vocab/k1` |" in lines
    assert "## Tokenizer" in lines
    for absent in ("## Base model", "## Embedding initialisation", "## Data", "## Training", "## Evaluation"):
        assert absent not in lines
    assert sorted(p.name for p in path.parent.iterdir()) == ["compression.png", "report.md", "stage_times.png"]


def test_report_without_compression_or_metrics(run, tmp_path):
    tok = tmp_path / "tok"
    write(tok / "summary.json", {"base_size": 32000, "final_size": 32000, "new_pieces": 0})  # no eval texts
    train = tmp_path / "train"
    write(train / "summary.json", {"steps": 0, "plugin": "ddp", "world_size": 2, "tokens_per_s": None})
    dirs = {"expand_vocab": str(tok), "train": str(train)}
    stages = {k: {"dir": v, "key": None, "reused": False, "seconds": 1.0} for k, v in dirs.items()}
    path = write_report(run["root"], key_figures(stages, dirs, ["logger=none"]), dirs)
    lines = path.read_text(encoding="utf-8").split("\n")
    assert "32,000 -> 32,000 pieces (0 new)." in lines
    assert any(ln.startswith("0 steps, plugin `ddp` on 2 process(es),") for ln in lines)
    assert "| stage | steps | loss |" in lines  # no metrics.jsonl: a table without rows
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.md", "stage_times.png"]
