"""The run report: run_root/summary.json (key figures of every stage) and report/report.md with its plots."""

import json
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger("graft.pipeline")
LOSS_WINDOW = 0.1
"""A stage's final loss is the mean over the last tenth of its logged steps (at least one): single steps are noisy."""


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_metrics(train_dir: Path) -> list[dict]:
    path = Path(train_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def stage_losses(records: list[dict]) -> dict[str, dict]:
    """stage -> {steps, last_step, window, loss, by_category}: mean losses over the end of each stage."""
    by_stage: dict[str, list[dict]] = {}
    for r in records:
        by_stage.setdefault(r["stage"], []).append(r)
    out = {}
    for stage, rs in by_stage.items():
        window = rs[-max(1, round(len(rs) * LOSS_WINDOW)):]
        cats = sorted({k[len("loss/"):] for r in window for k in r if k.startswith("loss/")})
        by_cat = {}
        for c in cats:
            vals = [r[f"loss/{c}"] for r in window if f"loss/{c}" in r]
            by_cat[c] = sum(vals) / len(vals)
        out[stage] = {"steps": len(rs), "last_step": rs[-1]["step"], "window": len(window),
                      "loss": sum(r["loss"] for r in window) / len(window), "by_category": by_cat}
    return out


def step0(diag: dict) -> dict:
    """The step-0 diagnostics a sweep compares (init_model's summary.json has them all)."""
    out: dict = {lang: {"bits_per_byte": r.get("init"), "base_bits_per_byte": r.get("base"), "change": r.get("change")}
                 for lang, r in (diag.get("heldout") or {}).items()}
    shift = diag.get("base_language_shift") or {}
    if shift:
        out["kl"] = shift.get("kl_mean")
        out["new_token_mass"] = (shift.get("new_token_mass") or {}).get("mean")
    return out


def key_figures(stages: dict[str, dict], dirs: dict[str, str], overrides: list[str]) -> dict:
    """What a sweep collects from a run: the stages and each stage's headline numbers."""
    s = {name: read_json(Path(d) / "summary.json") for name, d in dirs.items()}
    out: dict = {"stages": stages, "overrides": list(overrides)}
    if s.get("demo_inputs"):
        out["inputs"] = {"base_model_parameters": s["demo_inputs"].get("base_model_parameters"),
                         "base_model_pretraining": s["demo_inputs"].get("base_model_pretraining")}
    if s.get("expand_vocab"):
        t = s["expand_vocab"]
        out["tokenizer"] = {k: t.get(k) for k in ("base_size", "final_size", "new_pieces", "compression")}
    if s.get("init_model"):
        m = s["init_model"]
        out["init"] = {k: m.get(k) for k in ("strategy", "old_size", "new_size", "parameters")}
        if m.get("diagnostics"):
            out["init"]["step0"] = step0(m["diagnostics"])
    if s.get("prepare_data"):
        d = s["prepare_data"]
        out["data"] = {k: d.get(k) for k in ("records_in", "records_kept", "tokens", "packs", "packing_efficiency",
                                             "num_buckets")}
    if s.get("train"):
        t = s["train"]
        out["train"] = {"steps": t.get("steps"), "final_loss": t.get("final_loss"), "tokens_per_s": t.get("tokens_per_s"),
                        "tokens_seen": t.get("tokens_seen"), "plugin": t.get("plugin"), "world_size": t.get("world_size"),
                        "stages": stage_losses(read_metrics(Path(dirs["train"])))}
    if s.get("evaluate"):
        e = s["evaluate"]
        out["eval"] = {
            "questions": e.get("questions"),
            "datasets": {name: {m: {"micro": v["micro"], "macro": v["macro"], "n": v["n"]}
                                for m, v in ms.items() if m != "notes"}
                         for name, ms in (e.get("datasets") or {}).items()},
            "heldout": {lang: {k: h.get(k) for k in ("perplexity", "bits_per_byte", "loss_per_token", "tokens")}
                        for lang, h in (e.get("heldout") or {}).items()},
        }
    return out


# ---- plots -----------------------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loss(records: list[dict], path: Path) -> bool:
    """Loss per step, overall and per category, with the stages marked."""
    if not records:
        return False
    plt = _pyplot()
    steps = [r["step"] for r in records]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(steps, [r["loss"] for r in records], color="black", lw=1.5, label="all")
    cats = sorted({k[len("loss/"):] for r in records for k in r if k.startswith("loss/")})
    for c in cats:
        xs = [r["step"] for r in records if f"loss/{c}" in r]
        ax.plot(xs, [r[f"loss/{c}"] for r in records if f"loss/{c}" in r], lw=1, alpha=0.8, label=c)
    prev = None
    for r in records:
        if r["stage"] != prev:
            ax.axvline(r["step"] - 0.5, color="grey", ls="--", lw=0.8)
            ax.text(r["step"], ax.get_ylim()[1], f" {r['stage']}", va="top", fontsize=8, color="grey")
            prev = r["stage"]
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("training loss by stage and category")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_compression(compression: dict, path: Path) -> bool:
    """Tokens per character per language, base vs expanded tokenizer."""
    if not compression:
        return False
    plt = _pyplot()
    langs = list(compression)
    xs = range(len(langs))
    fig, ax = plt.subplots(figsize=(6, 4))
    base = [compression[lang]["base_tokens_per_char"] for lang in langs]
    new = [compression[lang]["expanded_tokens_per_char"] for lang in langs]
    ax.bar([x - 0.2 for x in xs], base, 0.4, label="base")
    ax.bar([x + 0.2 for x in xs], new, 0.4, label="expanded")
    for x, lang in zip(xs, langs, strict=True):
        ax.text(x + 0.2, new[x], f"x{compression[lang]['ratio']:.3f}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(list(xs), langs)
    ax.set_ylabel("tokens per character")
    ax.set_title("compression by language (held-out text)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_stage_times(stages: dict[str, dict], path: Path) -> bool:
    if not stages:
        return False
    plt = _pyplot()
    names = list(stages)
    secs = [stages[n]["seconds"] if not stages[n]["reused"] else (stages[n].get("built_seconds") or 0.0)
            for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bars = ax.barh(names, secs, color=["#bbbbbb" if stages[n]["reused"] else "#4477aa" for n in names])
    for b, n in zip(bars, names, strict=True):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, " reused" if stages[n]["reused"] else "",
                va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds (reused stages: when they were built)")
    ax.set_title("time per stage")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---- report.md -------------------------------------------------------------------------------------------------

def _fmt(x, digits=4) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _table(head: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows], ""]


def _step0_lines(z: dict) -> list[str]:
    """The report's step-0 table and sentence (init_model's diagnostics, as key_figures keeps them)."""
    lines: list[str] = []
    langs = [k for k, v in z.items() if isinstance(v, dict)]
    if langs:
        lines += ["At step 0 (before training), held-out bits per byte:", ""]
        lines += _table(["language", "base model", "initialised", "change"],
                        [[lang, z[lang].get("base_bits_per_byte"), z[lang].get("bits_per_byte"),
                          None if z[lang].get("change") is None else f"{100 * z[lang]['change']:+.2f} %"]
                         for lang in langs])
    if z.get("kl") is not None:
        lines += [f"On held-out base-language text the new tokens take {_fmt(z['new_token_mass'])} of the "
                  f"probability; KL(base || initialised) = {_fmt(z['kl'])} nats per token "
                  "(init_model's summary.json: `diagnostics`).", ""]
    return lines


def write_report(run_root: Path, figures: dict, dirs: dict[str, str]) -> Path:
    """report/report.md and its PNGs; returns the report's path."""
    out = Path(run_root) / "report"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    stages = figures["stages"]
    lines = [f"# Run report: {Path(run_root).name}", "",
             "Overrides: " + (" ".join(f"`{o}`" for o in figures["overrides"]) or "(none)"), "", "## Stages", ""]
    def secs(x):
        return f"{x:.1f}" if x is not None else None

    lines += _table(["stage", "key", "reused", "seconds", "built in (s)", "built with CPU (s)", "folder"],
                    [[n, r["key"], "yes" if r["reused"] else "no", secs(r["seconds"]), secs(r.get("built_seconds")),
                      secs(r.get("built_cpu_seconds")), f"`{os.path.relpath(r['dir'], run_root)}`"]
                     for n, r in stages.items()])
    if plot_stage_times(stages, out / "stage_times.png"):
        lines += ["![time per stage](stage_times.png)", ""]

    if "inputs" in figures and figures["inputs"].get("base_model_pretraining"):
        p = figures["inputs"]["base_model_pretraining"]
        lines += ["## Base model", "",
                  f"{_fmt(figures['inputs']['base_model_parameters'])} parameters, pre-trained {p.get('steps')} steps "
                  f"(Chinese share {p.get('zh_share')}): loss {_fmt(p.get('loss_first'))} -> {_fmt(p.get('loss_last'))}.",
                  ""]

    tok = figures.get("tokenizer")
    if tok:
        lines += ["## Tokenizer", "", f"{_fmt(tok['base_size'])} -> {_fmt(tok['final_size'])} pieces "
                  f"({_fmt(tok['new_pieces'])} new).", ""]
        comp = tok.get("compression") or {}
        lines += _table(["language", "chars", "base tokens/char", "expanded tokens/char", "ratio"],
                        [[lang, c.get("chars"), c["base_tokens_per_char"], c["expanded_tokens_per_char"], c["ratio"]]
                         for lang, c in comp.items()])
        if plot_compression(comp, out / "compression.png"):
            lines += ["![compression by language](compression.png)", ""]

    if "init" in figures:
        i = figures["init"]
        lines += ["## Embedding initialisation", "",
                  f"`{i['strategy']}`: {_fmt(i['old_size'])} -> {_fmt(i['new_size'])} rows, "
                  f"{_fmt(i['parameters'])} parameters.", ""]
        lines += _step0_lines(i.get("step0") or {})

    if "data" in figures:
        d = figures["data"]
        lines += ["## Data", "",
                  f"{_fmt(d['records_in'])} records in, {_fmt(d['records_kept'])} kept; {_fmt(d['tokens'])} tokens in "
                  f"{_fmt(d['packs'])} packs over {d['num_buckets']} buckets (packing efficiency "
                  f"{_fmt(d['packing_efficiency'])}).", ""]

    if "train" in figures:
        t = figures["train"]
        lines += ["## Training", "",
                  f"{t['steps']} steps, plugin `{t['plugin']}` on {t['world_size']} process(es), "
                  f"{_fmt(t['tokens_per_s'], 1)} tokens/s. Loss at the end of each stage (mean over its last "
                  f"{int(LOSS_WINDOW * 100)}% of steps):", ""]
        cats = sorted({c for s in t["stages"].values() for c in s["by_category"]})
        lines += _table(["stage", "steps", "loss", *cats],
                        [[n, s["steps"], s["loss"], *[s["by_category"].get(c) for c in cats]]
                         for n, s in t["stages"].items()])
        if plot_loss(read_metrics(Path(dirs["train"])), out / "loss.png"):
            lines += ["![loss by stage and category](loss.png)", ""]

    if "eval" in figures:
        edir = Path(dirs["evaluate"])
        lines += ["## Evaluation", ""]
        table_md = edir / "table.md"
        if table_md.is_file():
            # Its headings go one level down, under this section.
            lines += [("#" + ln if ln.startswith("#") else ln) for ln in table_md.read_text(encoding="utf-8").splitlines()]
            lines.append("")
        for png in sorted(edir.glob("*.png")):
            shutil.copyfile(png, out / f"eval_{png.name}")
            lines += [f"![{png.stem}](eval_{png.name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
