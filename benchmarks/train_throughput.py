"""Training throughput of `research.train` in benchmark mode (synthetic packs, random weights), and the helpers
of benchmarks/gpu_check.sh.

    python benchmarks/train_throughput.py [--steps 8] [--seq-len 256]     # CPU: 2 processes, tiny model, 5 plugins
    python benchmarks/train_throughput.py --gpu [--model llama_1b3] [--seq-len 4096] [--micro-batch 4]
    python benchmarks/train_throughput.py --params llama_1b3              # parameter count, FLOPs per token

Each case runs `research.train train.benchmark=true` under torchrun in a fresh process (--gpu: one process, bf16;
ddp and zero2 with the fused loss off and on, and gemini). The model is the `model` group's config (--model) or the
HF folder at --model-path (the same shape, loaded instead of initialised). Prints the table (the same columns on
CPU and GPU), appends the rows to benchmarks/results/train_throughput.csv (or --csv), and with --json writes every
case, failed ones included, after each case.

Helpers of benchmarks/gpu_check.sh:
    --make-model DIR [--model NAME] [--set key=value ...] [--device cuda]  # random weights + LLaMA tokenizer
    --make-data DIR [--vocab 32000] [--seq-len 512] [--buckets 10] [--packs 2]  # synthetic packed buckets
    --check-resume DIR --log FILE          # the run killed after step 4 and resumed: steps, losses, final model
    --summary OUT                          # the table of gpu_check's parts, from OUT/parts.tsv and their outputs
"""

import argparse
import csv
import datetime
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CSV_PATH = ROOT / "benchmarks" / "results" / "train_throughput.csv"
# CPU: every case steps on a global batch of 2 packs (pp2: one data-parallel rank, 2 pipeline micro-batches).
CPU_CASES = [("ddp", []), ("zero2", ["plugin=zero2"]), ("hybrid tp2", ["plugin=hybrid"]),
             ("hybrid pp2", ["plugin=hybrid", "plugin.tp_size=1", "plugin.pp_size=2", "train.grad_accum=2"]),
             ("ddp fused_ce", ["model.fused_ce=true", "model.fused_ce_impl=chunked"])]
CPU_MODEL = ["model.vocab_size=1024", "model.hidden_size=128", "model.intermediate_size=344",
             "model.num_hidden_layers=2"]
# GPU: one process; the fused loss is kernels' Triton path (fused_ce_impl=auto on CUDA tensors).
GPU_CASES = [("ddp", []), ("ddp fused_ce", ["model.fused_ce=true"]), ("zero2", ["plugin=zero2"]),
             ("zero2 fused_ce", ["plugin=zero2", "model.fused_ce=true"]), ("gemini", ["plugin=gemini"])]
FIELDS = ["case", "nproc", "seq_len", "tokens_per_s", "mfu", "peak_memory_gb", "device", "torch", "colossalai",
          "python", "time", "model", "params", "micro_batch", "global_batch", "precision", "flops_per_token"]
TABLE_HEAD = ("| case | processes | seq len | tokens/s | MFU | peak mem (GB/rank) |\n"
              "|---|---|---|---|---|---|")


# ---- model sizes -------------------------------------------------------------------------------------------------

def model_spec(name: str, sets: list | None = None):
    """conf/model/<name>.yaml as a research.config.model.ModelConfig, with `key=value` changes applied."""
    import yaml
    from omegaconf import OmegaConf

    from research.config.model import ModelConfig

    fields = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml"))
    for item in sets or []:
        key, _, value = item.partition("=")
        fields[key] = yaml.safe_load(value)
    return ModelConfig(**fields)


def param_count(m) -> int:
    """Parameters of the LlamaForCausalLM of a model config (no biases): embeddings, lm_head unless tied, per layer
    q/o (hidden^2 each), k/v (hidden x kv heads x head dim each), gate/up/down (hidden x intermediate each) and two
    norms, and the final norm."""
    h, kv = m.hidden_size, m.num_key_value_heads * (m.hidden_size // m.num_attention_heads)
    layer = 2 * h * h + 2 * h * kv + 3 * h * m.intermediate_size + 2 * h
    return m.vocab_size * h * (1 if m.tie_word_embeddings else 2) + m.num_hidden_layers * layer + h


def llama_config(m):
    """The transformers LlamaConfig research.train builds from a model config in benchmark mode."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=m.vocab_size, hidden_size=m.hidden_size, intermediate_size=m.intermediate_size,
                       num_hidden_layers=m.num_hidden_layers, num_attention_heads=m.num_attention_heads,
                       num_key_value_heads=m.num_key_value_heads, rms_norm_eps=m.rms_norm_eps,
                       max_position_embeddings=m.max_position_embeddings, rope_theta=m.rope_theta,
                       tie_word_embeddings=m.tie_word_embeddings)


def tokenizer_file() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("mistral_common")  # data only: located, never imported
    return Path(list(spec.submodule_search_locations)[0], "data", "tokenizer.model.v1")


def make_model(out: Path, m, device: str) -> dict:
    """An HF folder: random weights of model config `m` (saved in m.dtype) and mistral-common's 32,000-piece LLaMA
    tokenizer; returns its description."""
    import torch
    import transformers

    tok = transformers.LlamaTokenizerFast(vocab_file=str(tokenizer_file()), from_slow=True, legacy=False,
                                          add_prefix_space=True, pad_token="<unk>")
    if len(tok) > m.vocab_size:
        raise SystemExit(f"model.vocab_size={m.vocab_size} is smaller than the tokenizer's {len(tok)} pieces")
    torch.manual_seed(m.seed)
    with torch.device(device):
        model = transformers.LlamaForCausalLM._from_config(llama_config(m), torch_dtype=getattr(torch, m.dtype))
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    return {"path": str(out), "model": m.name, "params": params, "formula": param_count(m), "dtype": m.dtype,
            "shape": {k: getattr(m, k) for k in ("vocab_size", "hidden_size", "intermediate_size",
                                                 "num_hidden_layers", "num_attention_heads")}}


# ---- the benchmark grid ------------------------------------------------------------------------------------------

def port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def case_command(args, tmp: str, overrides: list) -> list:
    model = [f"model={args.model}"] if args.model else ([] if args.gpu else CPU_MODEL)
    if args.model_path:
        model.append(f"paths.model={args.model_path}")
    extra = [f"train.peak_flops={args.peak_flops}"] if args.peak_flops else []
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.nproc),
            "--master_port", str(port()), "-m", "research.train", "logger=none", f"run_root={tmp}",
            "train.benchmark=true", f"train.benchmark_steps={args.steps}", f"train.benchmark_warmup={args.warmup}",
            f"train.benchmark_seq_len={args.seq_len}", f"train.micro_batch_size={args.micro_batch}",
            f"train.precision={args.precision}", *model, *extra, *overrides]


def run_case(args, name: str, overrides: list, meta: dict) -> dict:
    """One case in a fresh process; its row (status "ok", "timed out after N s" or "failed (...)")."""
    row = {"case": name, "nproc": args.nproc, "seq_len": args.seq_len, "micro_batch": args.micro_batch,
           "precision": args.precision, **meta}
    env = {**os.environ} if args.gpu else {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            r = subprocess.run(case_command(args, tmp, overrides), cwd=ROOT, capture_output=True, text=True,
                               timeout=args.timeout, env=env)
        except subprocess.TimeoutExpired as e:
            _log(args, name, _text(e.stdout), _text(e.stderr))
            return {**row, "status": f"timed out after {args.timeout} s"}
        _log(args, name, r.stdout, r.stderr)
        summary = Path(tmp) / "train" / "summary.json"
        if r.returncode != 0 or not summary.is_file():
            return {**row, "status": f"failed (rc {r.returncode}: {_last_error(r.stderr)})"}
        s = json.loads(summary.read_text())
    return {**row, "status": "ok", "tokens_per_s": round(s["tokens_per_s"], 1), "mfu": s["mfu"],
            "peak_memory_gb": round(s["peak_memory_gb"], 3), "params": s["num_params"],
            "global_batch": s["global_batch"], "flops_per_token": s["flops_per_token"]}


def _text(out) -> str:
    return out.decode(errors="replace") if isinstance(out, bytes) else (out or "")


def _last_error(stderr: str) -> str:
    """The worker's error (a GraftError's `error:` line or an exception), not torchrun's ChildFailedError."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^(error: |[A-Za-z_][\w.]*(Error|Exception)\b)", ln)
              and not ln.startswith("torch.distributed.elastic")]
    return (errors[0] if errors else (lines or ["no output"])[-1])[:200]


def _log(args, name: str, stdout, stderr) -> None:
    if args.log_dir:
        path = Path(args.log_dir) / f"train_case_{re.sub(r'[^A-Za-z0-9]+', '_', name)}.log"
        path.write_text(f"{stdout or ''}\n---- stderr ----\n{stderr or ''}")


def table(rows: list) -> str:
    lines = [TABLE_HEAD]
    for r in rows:
        if r.get("status", "ok") != "ok":
            lines.append(f"| {r['case']} | {r['nproc']} | {r['seq_len']} | {r['status']} | - | - |")
            continue
        mfu = "n/a (no peak)" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        lines.append(f"| {r['case']} | {r['nproc']} | {r['seq_len']} | {r['tokens_per_s']} | {mfu} | "
                     f"{r['peak_memory_gb']} |")
    return "\n".join(lines)


def setup_line(args, meta: dict) -> str:
    model = args.model or "tiny (hidden 128, 2 layers, vocabulary 1,024)"
    if args.model:
        m = model_spec(args.model)
        model += f" ({param_count(m):,} parameters)"
    return (f"{model}, {args.precision}, micro batch {args.micro_batch} per process, synthetic packs of "
            f"{args.seq_len}, {args.steps} timed steps after {args.warmup} warm-up; {meta['device']}, "
            f"torch {meta['torch']}, colossalai {meta['colossalai']}, Python {meta['python']}.")


def write_rows(path: Path, rows: list) -> None:
    """Append the rows that ran; an existing file keeps its own columns."""
    rows = [r for r in rows if r.get("status") == "ok"]
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = FIELDS
    if path.exists() and path.stat().st_size:
        with path.open(newline="") as f:
            fields = next(csv.reader(f), FIELDS) or FIELDS
    new = not path.exists() or not path.stat().st_size
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerows(rows)


def grid(args) -> list:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu x{os.cpu_count()}"
    meta = {"device": device, "torch": torch.__version__, "colossalai": _version("colossalai"),
            "python": platform.python_version(), "model": args.model or "tiny_h128"}
    cases = GPU_CASES if args.gpu else CPU_CASES
    if args.cases:
        wanted = [c.strip() for c in args.cases.split(",")]
        cases = [c for c in cases if c[0] in wanted]
    head = setup_line(args, meta)
    print(head, flush=True)
    rows = []
    for name, overrides in cases:
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        row = run_case(args, name, overrides, {**meta, "time": now})
        rows.append(row)
        print(f"{name}: " + (f"{row['tokens_per_s']} tokens/s" if row["status"] == "ok" else row["status"]), flush=True)
        if args.json:  # after every case: a part cut short by its time budget keeps the cases it finished
            Path(args.json).write_text(json.dumps({"setup": head, "rows": rows}, indent=1) + "\n")
    text = table(rows)
    print(text)
    if args.table:
        Path(args.table).write_text(f"{head}\n\n{text}\n")
    write_rows(Path(args.csv), rows)
    return rows


def _version(name: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


# ---- gpu_check.sh: data, the resumed run, the summary ------------------------------------------------------------

def make_data(out: Path, vocab: int, seq_len: int, buckets: int, packs: int) -> dict:
    from research.train.synthetic import write_synthetic_buckets

    write_synthetic_buckets(out, vocab, seq_len, num_buckets=buckets, packs_per_bucket=packs, seed=0)
    return {"path": str(out), "vocab_size": vocab, "max_length": seq_len, "buckets": buckets, "packs": buckets * packs}


def _records(path: Path) -> dict:
    if not path.is_file():
        return {}
    return {r["step"]: r for r in map(json.loads, filter(str.strip, path.read_text().splitlines()))}


def check_resume(run: Path, log: Path, kill_step: int = 4, checkpoint_step: int = 2) -> dict:
    """The run killed after step `kill_step` (its last checkpoint: `checkpoint_step`) and rerun: it resumed from
    that checkpoint, logged every step once, redid the steps after the checkpoint with the same losses (to 1e-2
    relative: GPU kernels need not be bitwise deterministic) and saved the final model."""
    before = _records(run / "metrics_before_kill.jsonl")
    after = _records(run / "train" / "metrics.jsonl")
    summary = json.loads((run / "train" / "summary.json").read_text()) if (run / "train" / "summary.json").is_file() \
        else {}
    redone = [s for s in range(checkpoint_step + 1, kill_step + 1) if s in before and s in after]
    diffs = [abs(after[s]["loss"] - before[s]["loss"]) / max(abs(before[s]["loss"]), 1e-12) for s in redone]
    text = log.read_text(errors="replace") if log.is_file() else ""
    resumed = re.search(r"resumed from \S+ \(step (\d+)", text)
    out = {"steps_before_kill": sorted(before), "steps": sorted(after), "final_step": summary.get("steps"),
           "resumed_from_step": int(resumed.group(1)) if resumed else None, "redone_steps": redone,
           "max_rel_loss_diff": max(diffs) if diffs else None, "final_loss": summary.get("final_loss"),
           "tokens_per_s": summary.get("tokens_per_s"), "peak_memory_gb": summary.get("peak_memory_gb"),
           "final_model": (run / "train" / "final" / "config.json").is_file()}
    expected = list(range(1, max(after, default=0) + 1))
    out["ok"] = bool(out["resumed_from_step"] == checkpoint_step and sorted(after) == expected and redone
                     and max(diffs) < 1e-2 and out["final_model"] and summary.get("steps") == max(after))
    return out


def _pytest_line(out: Path) -> str:
    text = (out / "kernel_tests.log").read_text(errors="replace") if (out / "kernel_tests.log").is_file() else ""
    found = re.findall(r"\d+ (?:passed|failed|skipped|errors?|deselected)[^\n=]*", text)
    return found[-1].strip() if found else ""


def _grid_line(out: Path) -> str:
    path = out / "cross_entropy.csv"
    if not path.is_file():
        return ""
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["method"] == "triton" and r.get("time_vs_floor")]
    if not rows:
        return ""
    return "triton (default chunking) vs matmul floor: " + ", ".join(
        f"N={r['n']} {float(r['time_vs_floor']):.2f}x {float(r['time_ms']):.1f} ms" for r in rows)


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _bench_key(r: dict) -> str:
    if r["status"] != "ok":
        return f"{r['case']} {r['status'][:80]}"
    mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
    return f"{r['case']} {r['tokens_per_s']:,.0f} tok/s, MFU {mfu}, {r['peak_memory_gb']:.1f} GB"


def key_numbers(out: Path) -> dict:
    """Part -> its key numbers, from the files each part leaves under OUT."""
    keys = {"kernel_tests": _pytest_line(out), "kernel_grid": _grid_line(out)}
    env = (out / "env.txt").read_text(errors="replace") if (out / "env.txt").is_file() else ""
    keys["setup"] = "; ".join(ln.strip() for ln in env.splitlines()
                              if ln.startswith(("python ", "missing")) or (ln.startswith("torch ") and " cuda " in ln))
    big, small = _load(out / "prepare_model.json") or {}, _load(out / "prepare_small.json") or {}
    if big:
        keys["prepare"] = f"{big['model']}: {big['params']:,} parameters" + (
            f"; train_run's model: {small['params']:,}" if small else "")
    bench = _load(out / "train_gpu.json") or {}
    keys["train_bench"] = "; ".join(_bench_key(r) for r in bench.get("rows", []))
    run = _load(out / "train_run.json") or {}
    if run:
        diff = run["max_rel_loss_diff"]
        keys["train_run"] = (f"steps {run['steps'][0] if run['steps'] else '-'}-{run['final_step']}, resumed from "
                             f"step {run['resumed_from_step']}, steps {run['redone_steps']} redone: loss within "
                             f"{'-' if diff is None else f'{diff:.1e}'} (relative), final model "
                             f"{'saved' if run['final_model'] else 'missing'}, {'ok' if run['ok'] else 'NOT ok'}")
    ev = _load(out / "evaluate" / "summary.json") or {}
    if ev:
        keys["evaluate"] = (f"{ev['questions']} questions in {ev['seconds']} s: {ev['questions_per_second']} "
                            f"questions/s at batch 16")
    return keys


def summary(out: Path) -> str:
    """The parts table: part, status, seconds (of its budget), key numbers."""
    keys = key_numbers(out)
    lines = ["| part | status | seconds (budget) | key numbers |", "|---|---|---|---|"]
    tsv = out / "parts.tsv"
    for line in (tsv.read_text().splitlines() if tsv.is_file() else []):
        name, status, seconds, budget = (line.split("\t") + ["", "", ""])[:4]
        lines.append(f"| {name} | {status} | {seconds} ({budget}) | {keys.get(name, '')} |")
    text = "\n".join(lines)
    (out / "summary.md").write_text(text + "\n")
    return text


# ---- command line ------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", action="store_true", help="the GPU cases: one process, bf16, --model llama_1b3")
    ap.add_argument("--model", default=None, help="a conf/model/ config (default: tiny on CPU, llama_1b3 with --gpu)")
    ap.add_argument("--model-path", default=None, help="an HF folder of that shape, loaded instead of initialised")
    ap.add_argument("--seq-len", "--seq", type=int, default=None, help="pack length (256 CPU, 4096 GPU)")
    ap.add_argument("--steps", type=int, default=8, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--micro-batch", type=int, default=None, help="packs per process per step (1 CPU, 4 GPU)")
    ap.add_argument("--precision", default=None, help="train.precision (fp32 CPU, bf16 GPU)")
    ap.add_argument("--nproc", type=int, default=None, help="processes (2 CPU, 1 GPU)")
    ap.add_argument("--peak-flops", type=float, default=0.0, help="train.peak_flops (0: looked up)")
    ap.add_argument("--cases", default=None, help="comma-separated case names")
    ap.add_argument("--timeout", "--case-timeout", type=int, default=300, help="seconds per case")
    ap.add_argument("--csv", default=str(CSV_PATH))
    ap.add_argument("--table", default=None, help="also write the setup line and table here")
    ap.add_argument("--json", default=None, help="write the rows (or a helper's result) here")
    ap.add_argument("--log-dir", default=None, help="write each case's output here")
    ap.add_argument("--params", metavar="MODEL", default=None, help="print a model config's size and exit")
    ap.add_argument("--make-model", metavar="DIR", default=None)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="--make-model: model config changes")
    ap.add_argument("--device", default="cpu", help="--make-model: where to initialise the weights")
    ap.add_argument("--make-data", metavar="DIR", default=None)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--buckets", type=int, default=10)
    ap.add_argument("--packs", type=int, default=2, help="--make-data: packs per bucket")
    ap.add_argument("--check-resume", metavar="DIR", default=None)
    ap.add_argument("--log", default=None, help="--check-resume: the resumed run's log")
    ap.add_argument("--summary", metavar="OUT", default=None)
    args = ap.parse_args(argv)
    gpu = args.gpu
    args.model = args.model or ("llama_1b3" if gpu else None)
    for key, cpu, gpu_value in (("seq_len", 256, 4096), ("micro_batch", 1, 4), ("precision", "fp32", "bf16"),
                                ("nproc", 2, 1)):
        if getattr(args, key) is None:
            setattr(args, key, gpu_value if gpu else cpu)
    return args


def helper(args) -> dict | str | None:
    """Run the helper the arguments name, if any; its result (None: no helper was asked for)."""
    if args.params:
        m = model_spec(args.params, args.set)
        from research.train.step_metrics import flops_per_token

        n = param_count(m)
        return {"model": m.name, "params": n, "non_embedding": n - m.vocab_size * m.hidden_size,
                "flops_per_token": flops_per_token(m, n, args.seq_len)}
    if args.make_model:
        return make_model(Path(args.make_model), model_spec(args.model or "tiny", args.set), args.device)
    if args.make_data:
        return make_data(Path(args.make_data), args.vocab, args.seq_len, args.buckets, args.packs)
    if args.check_resume:
        return check_resume(Path(args.check_resume), Path(args.log or "/dev/null"))
    if args.summary:
        return summary(Path(args.summary))
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    result = helper(args)
    if result is None:
        rows = grid(args)
        ok = sum(r["status"] == "ok" for r in rows)
        return 0 if rows and ok == len(rows) else (3 if ok else 1)  # 3: some cases ran, some did not
    print(result if isinstance(result, str) else json.dumps(result, default=str))
    if args.json and not isinstance(result, str):
        Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0 if not isinstance(result, dict) or result.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
