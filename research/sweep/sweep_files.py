"""sweep.csv (every column), sweep.md (one row per job: swept values, key metrics, status) and sweep.png."""

import csv
from pathlib import Path

from research.sweep.columns import key_metrics, metric_columns, table_metrics
from research.sweep.jobs import OK, Sweep


def _number(value: str):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def rows(sweep: Sweep) -> tuple[list[dict], list[str]]:
    """One dict per job (swept values, status, metrics, reason) and the metric column names in first-seen order."""
    out, metric_names = [], []
    for job in sweep.jobs:
        metrics = metric_columns(job.summary) if job.status == OK else {}
        metric_names += [m for m in metrics if m not in metric_names]
        values = job.values
        out.append({"job": job.name, "status": job.status, **{k: values.get(k, "") for k in sweep.swept},
                    **metrics, "reason": job.reason})
    if len(sweep.swept) == 1:
        key = sweep.swept[0]
        if all(_number(r[key]) is not None for r in out):
            out.sort(key=lambda r: _number(r[key]))
    return out, metric_names


def write_csv(path: Path, table: list[dict], columns: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in table:
            w.writerow({c: r.get(c, "") for c in columns})


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 1e4 else str(v)
    return str(v).replace("|", "\\|")


def markdown(sweep: Sweep, table: list[dict], metric_names: list[str]) -> str:
    shown = table_metrics(metric_names)
    head = ["job", *sweep.swept, *shown, "status"]
    n_ok = sum(r["status"] == OK for r in table)
    expected = f" of {sweep.expected} defined" if sweep.expected is not None else ""
    lines = [f"# Sweep {sweep.dir.name}", "",
             f"{len(table)} jobs{expected}: {n_ok} ok, {len(table) - n_ok} failed or missing. "
             f"Swept: {', '.join(sweep.swept) or '(nothing varies)'}. All columns are in sweep.csv.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        status = r["status"] if r["status"] == OK else f"**{r['status']}**: {r['reason']}"
        cells = [r["job"], *[r.get(k, "") for k in sweep.swept], *[r.get(m, "") for m in shown], status]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def plot(path: Path, sweep: Sweep, table: list[dict], metric_names: list[str]) -> None:
    """Each key metric against the swept value(s): a line over a numeric axis, points over named choices."""
    # A bare Figure (no pyplot): no global backend switch, so the notebooks' inline plots keep working.
    from matplotlib.figure import Figure

    ok = [r for r in table if r["status"] == OK]
    # A figure the swept value does not change (the tokenizer of an init sweep) says nothing here: sweep.md has it.
    metrics = [m for m in key_metrics(metric_names) if len(ok) < 2 or len({r.get(m) for r in ok}) > 1]
    fig = Figure(figsize=(4.5 * max(1, len(metrics)), 3.6))
    axes = fig.subplots(1, max(1, len(metrics)), squeeze=False)
    if not metrics or not ok:
        axes[0][0].text(0.5, 0.5, "no finished job reported a metric", ha="center", va="center")
        axes[0][0].set_axis_off()
    label = " / ".join(sweep.swept) or "job"
    numeric = len(sweep.swept) == 1 and all(_number(r[sweep.swept[0]]) is not None for r in ok)
    for ax, m in zip(axes[0], metrics, strict=False):
        pts = [r for r in ok if m in r]
        if numeric:
            xs = [_number(r[sweep.swept[0]]) for r in pts]
            ax.plot(xs, [r[m] for r in pts], "o-")
        else:
            names = [" ".join(str(r.get(k, "")) for k in sweep.swept) or r["job"] for r in pts]
            ax.plot(range(len(pts)), [r[m] for r in pts], "o")
            ax.set_xticks(range(len(pts)))
            ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
            ax.set_xlim(-0.5, len(pts) - 0.5)
        ax.set_xlabel(label)
        ax.set_title(m, fontsize=9)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3)
    failed = len(table) - len(ok)
    fig.suptitle(f"{sweep.dir.name}: {len(ok)} jobs" + (f" ({failed} failed or missing, not shown)" if failed else ""),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_all(sweep: Sweep) -> dict[str, Path]:
    table, metric_names = rows(sweep)
    columns = ["job", "status", *sweep.swept, *metric_names, "reason"]
    out = {"csv": sweep.dir / "sweep.csv", "md": sweep.dir / "sweep.md", "png": sweep.dir / "sweep.png"}
    write_csv(out["csv"], table, columns)
    out["md"].write_text(markdown(sweep, table, metric_names), encoding="utf-8")
    plot(out["png"], sweep, table, metric_names)
    return out
