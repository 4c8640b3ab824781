"""A job's summary.json as flat columns, and which of them are the sweep's key metrics.

The pipeline's summary.json holds `tokenizer` (final_size, compression per language), `init` (the step-0
diagnostics: held-out bits per byte per language, KL and new-token mass), `train` (final losses per
stage and category), `eval` (benchmark accuracies, held-out perplexity) and `stages` (folder, cache key, reused,
seconds per stage). Every number under tokenizer/train/eval becomes a column named by its dotted path; stages
give total seconds and how many were reused from the cache.
"""

import math

# Tokenizer compression keeps the two figures a reader compares; chars and token counts stay in summary.json.
_COMPRESSION_KEEP = ("expanded_tokens_per_char", "ratio")
_SECTIONS = ("tokenizer", "init", "data", "train", "eval")
# Per training stage, the end-of-stage losses; step counts and window sizes stay in summary.json.
_TRAIN_STAGE_KEEP = ("loss", "by_category")


def _flatten(node, prefix: str, out: dict) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(node, bool):
        return
    elif isinstance(node, (int, float)) and math.isfinite(node):
        out[prefix] = node


def metric_columns(summary: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for section in _SECTIONS:
        node = summary.get(section)
        if not isinstance(node, dict):
            continue
        if section == "tokenizer":
            comp = node.get("compression") or {}
            rest = {k: v for k, v in node.items() if k != "compression"}
            _flatten(rest, section, out)
            for lang, r in comp.items() if isinstance(comp, dict) else ():
                if isinstance(r, dict):
                    for k in _COMPRESSION_KEEP:
                        if isinstance(r.get(k), (int, float)):
                            out[f"tokenizer.{lang}.{k}"] = r[k]
        elif section == "train":
            stages = node.get("stages")
            _flatten({k: v for k, v in node.items() if k != "stages"}, section, out)
            for name, r in stages.items() if isinstance(stages, dict) else ():
                if isinstance(r, dict):
                    _flatten({k: r[k] for k in _TRAIN_STAGE_KEEP if k in r}, f"train.stages.{name}", out)
        elif section == "init":
            step0 = node.get("step0") if isinstance(node.get("step0"), dict) else {}
            # the base model's own numbers are the same in every job: summary.json keeps them
            _flatten({"step0": {k: ({m: x for m, x in v.items() if m != "base_bits_per_byte"} if isinstance(v, dict)
                                    else v) for k, v in step0.items()}}, section, out)
        else:
            _flatten(node, section, out)
    stages = summary.get("stages")
    if isinstance(stages, dict) and stages:
        secs = [s.get("seconds") for s in stages.values() if isinstance(s, dict)]
        out["seconds"] = round(sum(x for x in secs if isinstance(x, (int, float))), 1)
        out["stages_reused"] = sum(1 for s in stages.values() if isinstance(s, dict) and s.get("reused"))
    return out


def _pick(columns: list[str], *tests) -> str | None:
    """The shortest column passing every test (shortest = the most aggregate: loss before loss/zh_news)."""
    hits = [c for c in columns if all(t(c) for t in tests)]
    return min(hits, key=lambda c: (len(c), c)) if hits else None


def key_metrics(columns: list[str]) -> list[str]:
    """The headline figures: benchmark accuracy, held-out bits per byte (zh first), final training loss, zh
    compression ratio, each when some job reported it."""
    is_eval = lambda c: c.startswith("eval.")  # noqa: E731
    picks = [
        _pick(columns, is_eval, lambda c: c.endswith(".loglik.micro"))
        or _pick(columns, is_eval, lambda c: c.endswith(".micro")),
        _pick(columns, is_eval, lambda c: c.endswith("zh.bits_per_byte"))
        or _pick(columns, is_eval, lambda c: c.endswith(".bits_per_byte")),
        _pick(columns, lambda c: c.startswith("train."), lambda c: "loss" in c, lambda c: "final" in c)
        or _pick(columns, lambda c: c.startswith("train."), lambda c: "loss" in c),
        _pick(columns, lambda c: c.startswith("tokenizer."), lambda c: c.endswith(".ratio"),
              lambda c: ".zh." in c)
        or _pick(columns, lambda c: c.startswith("tokenizer."), lambda c: c.endswith(".ratio")),
    ]
    return [p for p in picks if p]


def table_metrics(columns: list[str], limit: int = 8) -> list[str]:
    """The columns shown in sweep.md: the key metrics first, then per-language compression, per-category
    losses and eval figures, capped so the table stays readable (sweep.csv has them all)."""
    first = key_metrics(columns)
    rest = [c for c in columns if c not in first
            and c.endswith((".ratio", ".loss", "final_loss", ".micro", ".bits_per_byte", ".change"))]
    chosen = (first + rest)[:limit]
    return chosen + [c for c in ("seconds", "stages_reused") if c in columns]
