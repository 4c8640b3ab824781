"""Evaluate one model folder on the configured benchmarks and held-out texts, data-parallel under torchrun."""

import logging
import time
from pathlib import Path

from research.atomic import atomic_dir
from research.errors import GraftError
from research.eval import heldout
from research.eval.accuracy import accuracy
from research.eval.datasets import Benchmark, load_benchmark
from research.eval.prompts import ANSWER_SEP, build_prompt, lang
from research.eval.tables import bar_chart, table
from research.model.weights import check_readable, check_weights
from research.rejects import Rejects
from research.runinfo import write_json, write_run_files

# torch and transformers are imported only once the inputs are checked, so bad input fails in a second.

log = logging.getLogger("graft.eval")


def check_folder(path: str, key: str) -> None:
    """An HF folder whose files all read; for the model, its safetensors headers match the files' sizes."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise GraftError(f"{key}={path!r}: not found (expected an HF model folder)")
    if key == "eval.model_path" and not (p / "config.json").is_file():
        raise GraftError(f"{key}={path!r}: no config.json in it (not an HF model folder)")
    check_readable(p, key)
    if key == "eval.model_path":
        check_weights(p, key)


def check_tokenizer_fits(tokenizer, rows: int, ecfg) -> None:
    """Every id the tokenizer can produce, and the special ids scoring uses (BOS starts held-out windows, EOS
    stops generation, pad/unk/EOS fill padding), must index a row of the model's embedding."""
    tok_key = "eval.tokenizer_path" if ecfg.tokenizer_path else "eval.model_path"
    tok = f"the tokenizer at {tok_key}={ecfg.tokenizer_path or ecfg.model_path!r}"
    model = f"the model at eval.model_path={ecfg.model_path!r}"
    if len(tokenizer) > rows:
        raise GraftError(f"{tok} has {len(tokenizer)} tokens but {model} has {rows} embedding rows "
                         "(vocab_size): use the tokenizer the model was resized to")
    for name in ("bos", "eos", "pad", "unk"):
        tid = getattr(tokenizer, f"{name}_token_id", None)
        if tid is not None and not 0 <= tid < rows:
            raise GraftError(f"{tok} has {name}_token_id={tid} but {model} has {rows} embedding rows (vocab_size)")


def load_model(ecfg, device):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok_path = ecfg.tokenizer_path or ecfg.model_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(tok_path, trust_remote_code=False)
        config = AutoConfig.from_pretrained(ecfg.model_path, trust_remote_code=False)
        vocab_size = getattr(getattr(config, "get_text_config", lambda: config)(), "vocab_size", None)
        if vocab_size:  # before the weights load: a mismatch fails in seconds, whatever the model's size
            check_tokenizer_fits(tokenizer, int(vocab_size), ecfg)
        # Any family transformers knows (llama, mistral, qwen2, ...: the folder's config.json decides); weights from
        # safetensors only, as check_folder checked them: a folder of pickled weights is refused, never unpickled.
        model = AutoModelForCausalLM.from_pretrained(ecfg.model_path, config=config,
                                                     torch_dtype=getattr(torch, ecfg.dtype), use_safetensors=True,
                                                     trust_remote_code=False)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GraftError(f"eval.model_path={ecfg.model_path!r}: cannot load ({first})") from None
    check_tokenizer_fits(tokenizer, model.get_input_embeddings().weight.shape[0], ecfg)
    model.to(device).eval()
    return model, tokenizer


def load_dataset(spec, rejects: Rejects, ecfg) -> Benchmark:
    try:
        return load_benchmark(spec, rejects, dev_shots_from_test=ecfg.dev_shots_from_test,
                              limit_per_subject=ecfg.limit_per_subject, seed=ecfg.seed)
    except OSError as e:  # an unreadable file or folder among the dataset's files
        raise GraftError(f"eval.datasets[{spec.name}]: cannot read {str(e.filename or spec.path)!r} "
                         f"({e.strerror or type(e).__name__})") from None


def answer_room(q, tokenizer, methods, max_new_tokens: int) -> int:
    room = 1
    if "generate" in methods:
        room = max(room, max_new_tokens)
    if "loglik" in methods and q.choices:
        sep = ANSWER_SEP[lang(q)]
        room = max(room, max(len(tokenizer.encode(sep + c, add_special_tokens=False)) for c in q.choices) + 1)
    return room


def evaluate_benchmark(bench: Benchmark, scorer, ecfg, max_length: int, rank: int, world: int):
    """Results per question (on rank 0, in the benchmark's order; None elsewhere)."""
    from research.eval import distributed
    from research.eval.methods import score_questions

    tok = scorer.tokenizer
    mine = distributed.shard(bench.questions, rank, world)

    def num_tokens(text: str) -> int:
        return len(tok(text).input_ids)

    prompts = [build_prompt(q, bench.dev.get(q.subject, [])[: ecfg.num_shots], num_tokens, max_length,
                            answer_room(q, tok, ecfg.methods, ecfg.max_new_tokens)) for q in mine]
    local = score_questions(mine, prompts, scorer, ecfg.methods, max_length, ecfg.max_new_tokens)
    parts = distributed.gather(local, rank, world)
    if parts is None:
        return None
    merged: dict[str, dict] = {}
    for part in parts:
        for qid, r in part.items():
            if qid in merged:
                raise GraftError(f"question id {qid!r} scored by two processes")
            merged[qid] = r
    missing = [q.id for q in bench.questions if q.id not in merged]
    if missing:
        raise GraftError(f"{len(missing)} questions were not scored (first: {missing[0]!r})")
    return [merged[q.id] for q in bench.questions]


def evaluate_heldout(scorer, ecfg, max_length: int, rank: int, world: int) -> dict[str, dict]:
    from research.eval import distributed

    out = {}
    for language, path in ecfg.heldout_texts.items():
        text = heldout.read_text(path, ecfg.heldout_max_chars, language)
        wins = heldout.windows(scorer.tokenizer, text, max_length)
        nll, tokens = heldout.score(scorer, distributed.shard(wins, rank, world))
        nll, tokens = distributed.all_sum([nll, float(tokens)], world)
        out[language] = heldout.summarize(nll, int(tokens), text) | {"path": str(path)}
    return out


def run(cfg, raw) -> dict | None:
    """Score, then (rank 0) write results.json, table.md, <dataset>.png, rejects.jsonl, summary.json."""
    ecfg = cfg.eval
    check_folder(ecfg.model_path, "eval.model_path")
    if ecfg.tokenizer_path:
        check_folder(ecfg.tokenizer_path, "eval.tokenizer_path")
    for language, path in ecfg.heldout_texts.items():
        heldout.read_text(path, 1, language)
    rejects = Rejects("dataset")
    benches: list[Benchmark] = [load_dataset(spec, rejects, ecfg) for spec in ecfg.datasets]
    names = [b.name for b in benches]
    if len(set(names)) != len(names):
        raise GraftError(f"eval.datasets lists a dataset twice: {names}")
    for r in rejects.rows:
        log.warning("rejected %s:%s: %s", r["file"], r["line"], r["reason"])

    import torch

    from research.eval import distributed
    from research.eval.inference import Scorer

    rank, world = distributed.setup()
    try:

        torch.manual_seed(ecfg.seed)
        model, tokenizer = load_model(ecfg, distributed.device())
        max_length = ecfg.max_length or int(getattr(model.config, "max_position_embeddings", 2048))
        scorer = Scorer(model, tokenizer, ecfg.batch_size, progress=rank == 0)
        t0 = time.perf_counter()
        per_dataset = {b.name: evaluate_benchmark(b, scorer, ecfg, max_length, rank, world) for b in benches}
        held = evaluate_heldout(scorer, ecfg, max_length, rank, world)
        seconds = time.perf_counter() - t0
        summary = None
        if rank == 0:
            summary = write_outputs(cfg, raw, benches, per_dataset, held, rejects, max_length, world, seconds)
        distributed.barrier(world)
        return summary
    finally:
        distributed.teardown()


def write_outputs(cfg, raw, benches, per_dataset, held, rejects, max_length, world, seconds) -> dict:
    from research import tracking

    metrics = {name: accuracy(results) for name, results in per_dataset.items()}
    notes = {b.name: dict(b.notes, split=b.split) for b in benches}
    n_questions = sum(len(r) for r in per_dataset.values())
    summary = {
        "model_path": cfg.eval.model_path,
        "tokenizer_path": cfg.eval.tokenizer_path or cfg.eval.model_path,
        "methods": list(cfg.eval.methods),
        "num_shots": cfg.eval.num_shots,
        "max_length": max_length,
        "processes": world,
        "questions": n_questions,
        "rejected": len(rejects.rows),
        "seconds": round(seconds, 3),
        "questions_per_second": round(n_questions / seconds, 3) if seconds > 0 else None,
        "datasets": {name: {"notes": notes[name],
                            **{m: {"micro": r["micro"], "macro": r["macro"], "n": r["n"],
                                   "categories": {c: v["acc"] for c, v in r["categories"].items()}}
                               for m, r in metrics[name].items()}}
                     for name in metrics},
        "heldout": held,
    }
    with atomic_dir(cfg.out_dir, cfg.overwrite) as tmp:
        write_json(tmp / "results.json", {
            "model_path": cfg.eval.model_path,
            "datasets": {b.name: {"split": b.split, "notes": notes[b.name], "questions": per_dataset[b.name]}
                         for b in benches},
            "metrics": metrics,
            "heldout": held,
        })
        (tmp / "table.md").write_text(table(metrics, held, notes), encoding="utf-8")
        for name, by_method in metrics.items():
            if by_method:
                bar_chart(tmp / f"{name}.png", name, by_method)
        rejects.write(tmp / "rejects.jsonl")
        write_run_files(tmp, raw, summary)
        if tracking.init_run(cfg, raw, job_type="evaluate", dir=tmp) is not None:
            flat = {f"{d}/{m}/{k}": v[k] for d, ms in summary["datasets"].items() for m, v in ms.items()
                    if m != "notes" for k in ("micro", "macro")}
            flat |= {f"heldout/{lang}/{k}": h[k] for lang, h in held.items() for k in ("bits_per_byte", "perplexity")}
            tracking.log(flat)
            tracking.summary(flat)
            tracking.finish()
    return summary
