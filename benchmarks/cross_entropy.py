"""Peak memory and time of linear cross-entropy (forward + backward) over a 69,104-token vocabulary.

Methods: naive full logits (bf16/fp32 logits, upcast, F.cross_entropy), kernels' chunked PyTorch path,
kernels' Triton path (GPU: the default chunking, Liger-Kernel's chunk rule, fp32 weight-gradient accumulation),
and where installed Liger-Kernel's fused linear cross-entropy and Cut Cross-Entropy. On CUDA the matmul floor (6 N H V FLOP) is timed with
torch bf16 matmuls of the same shapes. On CPU each method runs in its own process and peak memory is the
growth of resident memory (sampled in a thread), since torch keeps no CPU allocator statistics.

    python benchmarks/cross_entropy.py                      # GPU grid if CUDA is there, else the CPU size
    python benchmarks/cross_entropy.py --device cpu --quick # small CPU size for a quick look
    python benchmarks/cross_entropy.py --device cpu --reps 1 --rounds 3   # shared machine: alternate, median

Prints a table and appends rows to benchmarks/results/cross_entropy.csv (device and versions included).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kernels import linear_cross_entropy  # noqa: E402

VOCAB = 69104
GPU_SIZES = [(4096, 4096), (8192, 4096), (16384, 4096)]
CPU_SIZES = [(8192, 512)]
CPU_QUICK = [(2048, 256)]
FIELDS = ["timestamp", "device", "torch", "triton", "liger_kernel", "cut_cross_entropy", "dtype", "n", "h", "v",
          "method", "time_ms", "peak_mem_mb", "time_vs_naive", "mem_vs_naive", "matmul_floor_ms",
          "time_vs_floor", "loss", "note"]


def version(name: str) -> str:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return ""


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{torch.get_num_threads()} threads"
    except OSError:
        pass
    return platform.processor() or "cpu"


def make_step(method: str, n: int, h: int, v: int, dtype: torch.dtype, device: str):
    """Fresh random inputs (never zeros) and a closure running forward + backward; returns (step, params)."""
    hidden = (torch.randn(n, h, device=device) * h ** -0.5).to(dtype).requires_grad_()
    weight = (torch.randn(v, h, device=device) * 2.0).to(dtype).requires_grad_()
    target = torch.randint(0, v, (n,), device=device)
    target[torch.rand(n, device=device) < 0.05] = -100
    out = {}

    if method == "naive":
        def loss_fn():
            return F.cross_entropy((hidden @ weight.t()).float(), target, ignore_index=-100)
    elif method in ("chunked", "triton", "triton_fp32acc", "triton_liger_chunk") or method.startswith("chunked_"):
        impl = "triton" if method.startswith("triton") else "chunked"
        accum = torch.float32 if method == "triton_fp32acc" else None
        chunk = None
        if method == "triton_liger_chunk":
            # Liger-Kernel's rule: logits chunk about as large as hidden, rounded up to a power of two.
            chunk = 1 << (-(-n * h // v) - 1).bit_length()
        elif method.startswith("chunked_"):
            chunk = int(method.split("_")[1])

        def loss_fn():
            return linear_cross_entropy(hidden, weight, target, impl=impl, accum_dtype=accum,
                                        chunk_size=chunk).loss
    elif method == "liger":
        from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss

        liger = LigerFusedLinearCrossEntropyLoss()

        def loss_fn():
            return liger(weight, hidden, target)
    elif method == "cce":
        from cut_cross_entropy import linear_cross_entropy as cce

        def loss_fn():
            return cce(hidden, weight, target)
    else:
        raise ValueError(f"unknown method {method!r}")

    def step():
        hidden.grad = weight.grad = None
        loss = loss_fn()
        loss.backward()
        out["loss"] = loss
        return loss

    return step, (hidden, weight), out


class RssPeak:
    """Peak resident memory growth over a baseline, sampled every 5 ms in a thread."""

    def __init__(self):
        import psutil

        self.proc = psutil.Process()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def stop(self) -> float:
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        return (self.peak - self.base) / 2**20


def cpu_worker(method: str, n: int, h: int, v: int, reps: int) -> dict:
    torch.manual_seed(int.from_bytes(os.urandom(4), "little"))
    step, _, out = make_step(method, n, h, v, torch.float32, "cpu")
    monitor = RssPeak()
    step()  # warm-up, inside the memory window: the first step is the one that allocates
    times, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append(time.process_time() - c0)
    mem = monitor.stop()
    # CPU seconds and load average go in the note: on a shared machine wall time alone is not comparable.
    note = f"cpu {statistics.median(cpu):.1f} s/step, load {os.getloadavg()[0]:.1f}, reps {reps}"
    return {"time_ms": statistics.median(times), "peak_mem_mb": mem, "loss": float(out["loss"].detach()),
            "note": note}


def run_cpu(sizes, methods, reps, rounds) -> list[dict]:
    """Each method in a fresh process per round; rounds alternate the methods so that load drifting on a
    shared machine hits them alike. Reports the median time and the largest peak over rounds."""
    rows = []
    for n, h in sizes:
        runs = {m: [] for m in methods}
        errors = {}
        for r in range(rounds):
            for method in methods:
                cmd = [sys.executable, __file__, "--worker", method, "--n", str(n), "--h", str(h),
                       "--reps", str(reps)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    errors[method] = proc.stderr.strip().splitlines()[-1][:200]
                    continue
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                runs[method].append(res)
                print(f"  cpu N={n} H={h} {method} round {r + 1}/{rounds}: {res}", flush=True)
        for method in methods:
            got = runs[method]
            if not got:
                rows.append({"n": n, "h": h, "method": method, "note": errors.get(method, "no result")})
                continue
            times = [x["time_ms"] for x in got]
            note = "; ".join(x["note"] for x in got)
            if len(got) > 1:
                note = f"rounds {', '.join(f'{t / 1e3:.1f}' for t in times)} s; {note}"
            rows.append({"n": n, "h": h, "method": method, "time_ms": statistics.median(times),
                         "peak_mem_mb": max(x["peak_mem_mb"] for x in got), "loss": got[-1]["loss"], "note": note})
    return rows


def gpu_matmul_floor(n: int, h: int, v: int) -> float:
    """Milliseconds of the three LM-head products (logits, d hidden, d weight) in torch bf16."""
    from triton.testing import do_bench

    a = torch.randn(n, h, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(v, h, device="cuda", dtype=torch.bfloat16)
    g = torch.randn(n, v, device="cuda", dtype=torch.bfloat16)
    total = sum(do_bench(lambda x=x, y=y: x @ y, warmup=50, rep=300, return_mode="median")
                for x, y in ((a, w.t()), (g, w), (g.t(), a)))
    torch.cuda.empty_cache()
    return total


def run_gpu(sizes, methods) -> list[dict]:
    from triton.testing import do_bench

    rows = []
    for n, h in sizes:
        floor = gpu_matmul_floor(n, h, VOCAB)
        rate = 6 * n * h * VOCAB / floor / 1e9
        print(f"  matmul floor N={n} H={h}: {floor:.2f} ms ({rate:.0f} TFLOP/s)", flush=True)
        for method in methods:
            row = {"n": n, "h": h, "method": method, "matmul_floor_ms": floor}
            try:
                torch.manual_seed(int.from_bytes(os.urandom(4), "little"))
                step, params, out = make_step(method, n, h, VOCAB, torch.bfloat16, "cuda")
                step()  # compile / autotune outside the measurements
                for p in params:
                    p.grad = None
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                step()
                torch.cuda.synchronize()
                row["peak_mem_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
                row["loss"] = float(out["loss"].detach())
                row["time_ms"] = do_bench(step, warmup=100, rep=600, grad_to_none=list(params), return_mode="median")
                row["time_vs_floor"] = row["time_ms"] / floor
                del step, params, out
            except Exception as exc:  # one method failing must not lose the others' numbers
                row["note"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            torch.cuda.empty_cache()
            print(f"  gpu N={n} H={h} {method}: {row}", flush=True)
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    head = "| N | H | method | time (ms) | peak mem (MB) | time vs naive | mem vs naive | time vs matmul floor | loss |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        def f(key, fmt, r=r):
            return format(r[key], fmt) if r.get(key) not in (None, "") else "-"
        lines.append(f"| {r['n']} | {r['h']} | {r['method']} | {f('time_ms', '.1f')} | {f('peak_mem_mb', '.0f')} | "
                     f"{f('time_vs_naive', '.2f')} | {f('mem_vs_naive', '.3f')} | {f('time_vs_floor', '.2f')} | "
                     f"{f('loss', '.4f')}{' (' + r['note'] + ')' if r.get('note') else ''} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="CPU: N=2048, H=256 instead of N=8192, H=512")
    ap.add_argument("--methods", default=None, help="comma-separated subset")
    ap.add_argument("--reps", type=int, default=3, help="CPU timed repetitions per process (median)")
    ap.add_argument("--rounds", type=int, default=1, help="CPU: processes per method, alternating methods")
    ap.add_argument("--csv", default=str(ROOT / "benchmarks" / "results" / "cross_entropy.csv"))
    ap.add_argument("--table", default=None, help="also write the markdown table here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--h", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        print(json.dumps(cpu_worker(args.worker, args.n, args.h, VOCAB, args.reps)))
        return

    if args.device == "cuda":
        methods = ["naive", "chunked", "triton", "triton_liger_chunk", "triton_fp32acc", "liger", "cce"]
        sizes, dtype = GPU_SIZES, "bfloat16"
    else:
        methods = ["naive", "chunked"]
        sizes, dtype = (CPU_QUICK if args.quick else CPU_SIZES), "float32"
    if args.methods:
        methods = args.methods.split(",")
    if args.device == "cuda":
        rows = run_gpu(sizes, methods)
    else:
        rows = run_cpu(sizes, methods, args.reps, args.rounds)

    for r in rows:
        naive = next((x for x in rows if x["n"] == r["n"] and x["h"] == r["h"] and x["method"] == "naive"), None)
        if naive and naive.get("time_ms") and r.get("time_ms"):
            r["time_vs_naive"] = r["time_ms"] / naive["time_ms"]
            r["mem_vs_naive"] = r["peak_mem_mb"] / naive["peak_mem_mb"] if naive["peak_mem_mb"] > 0 else None

    meta = {"timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "device": device_name(args.device), "torch": torch.__version__, "triton": version("triton"),
            "liger_kernel": version("liger-kernel"), "cut_cross_entropy": version("cut-cross-entropy"),
            "dtype": dtype, "v": VOCAB}
    text = table(rows)
    print(f"\n{meta['device']}, torch {meta['torch']}, triton {meta['triton']}, V={VOCAB}, {dtype}, "
          f"forward+backward\n{text}")
    if args.table:
        Path(args.table).write_text(text + "\n")
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, extrasaction="ignore")
        if new:
            writer.writeheader()
        for r in rows:
            writer.writerow({**meta, **r})


if __name__ == "__main__":
    main()
