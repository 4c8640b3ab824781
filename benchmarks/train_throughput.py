"""Training throughput per plugin (ddp, zero2, hybrid tp=2, hybrid pp=2 on 2 processes) and fused vs plain loss.

python benchmarks/train_throughput.py [--steps 8] [--seq 256]
Runs `research.train` in benchmark mode (synthetic packs, random tiny model from the `model` group), prints a
table and appends rows to benchmarks/results/train_throughput.csv.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Every case steps on a global batch of 2 packs (pp2: one data-parallel rank, 2 pipeline micro-batches).
CASES = [("ddp", []), ("zero2", ["plugin=zero2"]), ("hybrid tp2", ["plugin=hybrid"]),
         ("hybrid pp2", ["plugin=hybrid", "plugin.tp_size=1", "plugin.pp_size=2", "train.grad_accum=2"]),
         ("ddp fused_ce", ["model.fused_ce=true", "model.fused_ce_impl=chunked"])]


def port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=300)
    args = ap.parse_args()
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu x{os.cpu_count()}"
    rows = []
    for name, overrides in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.nproc),
                   "--master_port", str(port()), "-m", "research.train", "logger=none", f"run_root={tmp}",
                   "train.benchmark=true", f"train.benchmark_steps={args.steps}", f"train.benchmark_seq_len={args.seq}",
                   "model.vocab_size=1024", "model.hidden_size=128", "model.intermediate_size=344",
                   "model.num_hidden_layers=2", *overrides]
            try:
                r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
            except subprocess.TimeoutExpired:
                print(f"{name}: timed out after {args.timeout} s", flush=True)
                continue
            if r.returncode != 0:
                print(f"{name}: failed\n{r.stderr[-2000:]}")
                continue
            s = json.loads((Path(tmp) / "train" / "summary.json").read_text())
        print(f"{name}: {s['tokens_per_s']:.1f} tokens/s", flush=True)
        rows.append({"case": name, "nproc": args.nproc, "seq_len": args.seq, "tokens_per_s": round(s["tokens_per_s"], 1),
                     "mfu": s["mfu"], "peak_memory_gb": round(s["peak_memory_gb"], 3), "device": device,
                     "torch": torch.__version__, "colossalai": _version("colossalai"), "python": platform.python_version(),
                     "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
    print("| case | processes | seq len | tokens/s | MFU | peak mem (GB/rank) |\n|---|---|---|---|---|---|")
    for r in rows:
        mfu = "n/a (CPU)" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        print(f"| {r['case']} | {r['nproc']} | {r['seq_len']} | {r['tokens_per_s']} | {mfu} | {r['peak_memory_gb']} |")
    out = ROOT / "benchmarks" / "results" / "train_throughput.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with out.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["case"])
        if new:
            w.writeheader()
        w.writerows(rows)


def _version(name: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(name)


if __name__ == "__main__":
    main()
