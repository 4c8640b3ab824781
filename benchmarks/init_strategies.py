"""Step-0 held-out loss per init strategy: does subword-mean initialisation start Chinese lower, English unchanged?

Takes a base model folder and an expanded tokenizer folder (by default the demo's: `make demo` builds them),
initialises the new rows with every strategy in conf/init/, and scores held-out Chinese and English text with
the base model and each initialised model (bits per byte, comparable across tokenizers: the base model reads the
text with the base tokenizer, the others with the expanded one). Prints a table and appends CSV rows to
benchmarks/results/init_strategies.csv.

    python benchmarks/init_strategies.py --run-root outputs/demo --chars 20000
"""

import argparse
import csv
import datetime
import json
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from research.config.init import InitConfig  # noqa: E402
from research.eval import heldout  # noqa: E402
from research.eval.inference import Scorer  # noqa: E402
from research.init.resize import resize_and_init  # noqa: E402
from research.init.splits import base_splits  # noqa: E402
from research.init.strategies import STRATEGIES  # noqa: E402
from research.runinfo import versions  # noqa: E402
from research.tokenizer.spm_model import load_model  # noqa: E402


def held_out(model, tok, texts: dict[str, str], window: int) -> dict[str, dict]:
    scorer = Scorer(model, tok, batch_size=8, progress=False)
    out = {}
    for lang, text in texts.items():
        nll, n = heldout.score(scorer, heldout.windows(tok, text, window))
        out[lang] = heldout.summarize(nll, n, text)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-root", default="outputs/demo", help="a run root holding inputs/ and tokenizer/")
    ap.add_argument("--base-model", default=None, help="default: <run-root>/inputs/base_model")
    ap.add_argument("--tokenizer", default=None, help="default: <run-root>/tokenizer")
    ap.add_argument("--chars", type=int, default=20000, help="held-out characters per language")
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--csv", default=str(ROOT / "benchmarks/results/init_strategies.csv"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    root = Path(args.run_root)
    base_dir = Path(args.base_model or root / "inputs/base_model")
    tok_dir = Path(args.tokenizer or root / "tokenizer")
    texts = {"zh": heldout.read_text(str(root / "inputs/zh_news_heldout.txt"), args.chars, "zh"),
             "en": heldout.read_text(str(root / "inputs/en_heldout.txt"), args.chars, "en")}

    rows = []
    base = AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True).eval()
    base_tok = AutoTokenizer.from_pretrained(base_dir)
    t0 = time.perf_counter()
    rows.append({"model": "base (32,000 pieces)", **flatten(held_out(base, base_tok, texts, args.window))})
    print(f"base scored in {time.perf_counter() - t0:.1f}s", flush=True)

    expanded = load_model(tok_dir, "--tokenizer")
    old = base.get_input_embeddings().weight.shape[0]
    base_proto = type(expanded)()
    base_proto.CopyFrom(expanded)
    del base_proto.pieces[old:]
    splits = base_splits(base_proto.SerializeToString(), [p.piece for p in expanded.pieces[old:]])
    tok = AutoTokenizer.from_pretrained(tok_dir)
    for strategy in args.strategies.split(","):
        model = AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True).eval()
        resize_and_init(model, len(expanded.pieces), splits, InitConfig(strategy=strategy))
        t0 = time.perf_counter()
        rows.append({"model": f"init={strategy}", **flatten(held_out(model, tok, texts, args.window))})
        print(f"{strategy} scored in {time.perf_counter() - t0:.1f}s", flush=True)

    cols = ["model", "zh_bits_per_byte", "zh_loss_per_token", "en_bits_per_byte", "en_loss_per_token"]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(r[c] if c == "model" else f"{r[c]:.4f}" for c in cols) + " |")
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["time", "base_model", "tokenizer", "chars", *cols, "versions"])
        for r in rows:
            w.writerow([stamp, str(base_dir), str(tok_dir), args.chars, *[r[c] for c in cols],
                        json.dumps({k: versions()[k] for k in ("torch", "transformers")})])


def flatten(res: dict) -> dict:
    return {f"{lang}_{k}": v for lang, r in res.items() for k, v in r.items() if k in ("bits_per_byte", "loss_per_token")}


if __name__ == "__main__":
    main()
