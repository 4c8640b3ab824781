"""Output files: table.md (per method, category and subject) and one bar chart per dataset."""

from pathlib import Path

METHOD_TITLES = {
    "first_token": "first-token", "loglik": "loglik (acc)", "loglik_norm": "loglik/char (acc_norm)",
    "loglik_byte": "loglik/byte", "generate": "exact match", "combined": "combined",
}


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def table(metrics: dict[str, dict], heldout: dict[str, dict], notes: dict[str, dict]) -> str:
    lines = []
    for name, by_method in metrics.items():
        methods = list(by_method)
        n = notes.get(name, {})
        lines += [f"## {name}", "",
                  f"{n.get('questions', 0)} questions, {n.get('subjects', 0)} subjects, split {n.get('split')}, "
                  f"{n.get('rejected', 0)} rows rejected, {n.get('dev_from_test', 0)} test questions used as shots.",
                  ""]
        cats = sorted({c for m in by_method.values() for c in m["categories"]})
        head = ["method", "micro", "macro", *cats, "n"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m in methods:
            r = by_method[m]
            row = [METHOD_TITLES.get(m, m), pct(r["micro"]), pct(r["macro"]),
                   *[pct(r["categories"][c]["acc"]) if c in r["categories"] else "" for c in cats], str(r["n"])]
            lines.append("| " + " | ".join(row) + " |")
        subjects = sorted({s for m in by_method.values() for s in m["subjects"]})
        lines += ["", "| subject | n | " + " | ".join(METHOD_TITLES.get(m, m) for m in methods) + " |",
                  "|" + "---|" * (len(methods) + 2)]
        for s in subjects:
            n_s = max(by_method[m]["subjects"].get(s, {}).get("n", 0) for m in methods)
            cells = [pct(by_method[m]["subjects"][s]["acc"]) if s in by_method[m]["subjects"] else "" for m in methods]
            lines.append(f"| {s} | {n_s} | " + " | ".join(cells) + " |")
        lines.append("")
    if heldout:
        lines += ["## held-out text", "", "| language | tokens | bytes | loss/token | perplexity | bits/byte |",
                  "|---|---|---|---|---|---|"]
        for lang, h in heldout.items():
            lines.append(f"| {lang} | {h['tokens']} | {h['bytes']} | {h['loss_per_token']:.4f} | "
                         f"{h['perplexity']:.3f} | {h['bits_per_byte']:.4f} |")
        lines.append("")
    return "\n".join(lines)


def bar_chart(path: Path, name: str, by_method: dict[str, dict]) -> None:
    """Grouped bars: accuracy per category (or per subject when the dataset has no categories) and overall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(by_method)
    cats = sorted({c for m in by_method.values() for c in m["categories"]})
    groups = cats or sorted({s for m in by_method.values() for s in m["subjects"]})
    key = "categories" if cats else "subjects"
    groups = groups + ["all (micro)"]
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) * max(1, len(methods)) * 0.35 + 3), 4))
    for i, m in enumerate(methods):
        r = by_method[m]
        ys = [100 * r[key].get(g, {}).get("acc", 0.0) for g in groups[:-1]] + [100 * r["micro"]]
        ax.bar([x + i * width for x in range(len(groups))], ys, width, label=METHOD_TITLES.get(m, m))
    ax.set_xticks([x + width * (len(methods) - 1) / 2 for x in range(len(groups))])
    ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(name)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
