"""Every init strategy side by side at step 0: what init_model's diagnostics say about each, in one table.

Composes init_model's config (`experiment=study` by default: the study base and its expanded tokenizer, which
`python -m research.pipeline experiment=study` builds and caches) once per strategy in conf/init/, runs what init_model
runs (research.init_model.initialise: the strategy, then the step-0 diagnostics) without writing a model, and
prints one row per strategy: held-out bits per byte per language (base model, initialised, change), KL(base ||
initialised) and the new tokens' probability mass on held-out base-language text, and the seconds the strategy
and its diagnostics took. Appends the rows to benchmarks/results/init_step0.csv.

    python benchmarks/init_strategies.py                          # experiment=study, run root outputs/study
    python benchmarks/init_strategies.py --experiment demo --strategies subword_mean,guarded
"""

import argparse
import csv
import datetime
import json
import logging
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from research.config import to_object  # noqa: E402
from research.init.strategies import STRATEGIES  # noqa: E402
from research.init_model import initialise  # noqa: E402
from research.runinfo import versions  # noqa: E402

COLUMNS = ["strategy", "en_base", "en_init", "en_change_pct", "zh_base", "zh_init", "zh_change_pct", "kl",
           "new_token_mass", "seconds"]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from research.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose("init_model", overrides=overrides)


def row(strategy: str, stats: dict, seconds: float) -> dict:
    d = stats["diagnostics"]
    out = {"strategy": strategy, "seconds": round(seconds, 1)}
    for lang in ("en", "zh"):
        h = d["heldout"].get(lang, {})
        out[f"{lang}_base"], out[f"{lang}_init"] = h.get("base"), h.get("init")
        out[f"{lang}_change_pct"] = None if h.get("change") is None else 100 * h["change"]
    shift = d.get("base_language_shift") or {}
    out["kl"] = shift.get("kl_mean")
    out["new_token_mass"] = (shift.get("new_token_mass") or {}).get("mean")
    return out


def cell(v) -> str:
    return "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="study")
    ap.add_argument("--run-root", default=None, help="default: outputs/<experiment>")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--chars", type=int, default=20000, help="held-out characters per language (init.diagnostics_chars)")
    ap.add_argument("--csv", default=str(ROOT / "benchmarks/results/init_step0.csv"))
    ap.add_argument("overrides", nargs="*", help="more config overrides, e.g. init.guard_mass=0.001")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)
    root = Path(args.run_root or f"outputs/{args.experiment}")
    for need in ("inputs", "tokenizer"):
        if not (root / need).exists():
            sys.exit(f"error: {root / need} is missing: run python -m research.pipeline experiment={args.experiment} "
                     "first (or pass --run-root)")
    rows = []
    for strategy in args.strategies.split(","):
        raw = compose([f"experiment={args.experiment}", f"run_root={root}", f"paths.inputs={root / 'inputs'}",
                       f"paths.tokenizer={root / 'tokenizer'}", f"init={strategy}",
                       f"init.diagnostics_chars={args.chars}", *args.overrides])
        t0 = time.perf_counter()
        _, _, stats, _ = initialise(to_object(raw))
        rows.append(row(strategy, stats, time.perf_counter() - t0))
        print(" ".join(f"{c}={cell(rows[-1][c])}" for c in COLUMNS), flush=True)

    print("\n| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS))
    for r in rows:
        print("| " + " | ".join(cell(r[c]) for c in COLUMNS) + " |")
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ["time", "experiment", "chars", *COLUMNS, "versions"]
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(header)
        for r in rows:
            w.writerow([stamp, args.experiment, args.chars, *[r[c] for c in COLUMNS],
                        json.dumps({k: versions()[k] for k in ("torch", "transformers")})])
    print(f"appended {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
