"""Resize a causal LM of a known family (llama, mistral, qwen2: research/model/families.py) to an expanded tokenizer
and fill the new rows with an init strategy."""

import torch

from research.config.init import InitConfig
from research.errors import GraftError
from research.init.splits import Split
from research.init.strategies import STRATEGIES, InitContext


def resize_and_init(model, new_size: int, splits: list[Split], cfg: InitConfig, base_size: int | None = None,
                    corpus=None) -> dict:
    """Give the model a row for each of the tokenizer's `new_size` ids and fill the new ones (ids `base_size` on)
    with the init strategy; the base rows (ids below `base_size`) stay bit-identical.

    `base_size` (default: the model's rows) is the base tokenizer's size. A model may have more rows than that
    (Qwen2 pads its 151,665 ids to 151,936 rows): those padding rows belong to no token, so the first new tokens take
    them (ids `base_size` on, as the expanded tokenizer numbers them) and the matrix grows only past them; the
    strategies read the base rows only (and, for those registered with @needs, `corpus`: research/init/corpus.py,
    whose model is this one). With untied embeddings both matrices get their own new rows, each built
    from its own base rows; with tied embeddings the single shared matrix is initialised once.
    """
    emb = model.get_input_embeddings().weight
    rows_before = emb.shape[0]
    old_size = rows_before if base_size is None else base_size
    if old_size > rows_before:
        raise GraftError(f"the base tokenizer has {old_size} tokens but the model only {rows_before} embedding rows")
    if new_size < old_size:
        raise GraftError(f"tokenizer has {new_size} pieces but the model already has {old_size} rows")
    if len(splits) != new_size - old_size:
        raise GraftError(f"{len(splits)} new pieces for {new_size - old_size} new rows: tokenizer and model "
                         "disagree on the base vocabulary size")
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    base_emb = emb.detach()[:old_size].clone()
    head = model.get_output_embeddings()
    base_head = None if tied or head is None else head.weight.detach()[:old_size].clone()

    rows_after = max(new_size, rows_before)
    if rows_after != rows_before:
        model.resize_token_embeddings(rows_after, mean_resizing=False)
    if tied and head is not None and model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
        raise AssertionError("resizing untied the tied input and output embeddings")
    matrices = {"embed_tokens": (model.get_input_embeddings().weight, base_emb)}
    if base_head is not None:
        matrices["lm_head"] = (model.get_output_embeddings().weight, base_head)

    stats = {"strategy": cfg.strategy, "old_size": old_size, "new_size": new_size, "tied": tied,
             "model_rows": {"before": rows_before, "after": rows_after,
                            "padding_rows_taken": max(0, min(new_size, rows_before) - old_size)}}
    fn = STRATEGIES[cfg.strategy]
    if getattr(fn, "needs", ()) and corpus is None:
        raise GraftError(f"init.strategy={cfg.strategy} reads {', '.join('init.' + k for k in fn.needs)}: "
                         "give resize_and_init a corpus (research.init.corpus.load_corpus)")
    with torch.no_grad():
        for k, (name, (weight, base)) in enumerate(matrices.items()):
            gen = torch.Generator().manual_seed(cfg.seed + k)
            rows = fn(InitContext(base_rows=base, splits=splits, cfg=cfg, generator=gen, matrix=name, corpus=corpus,
                                  tied=tied))
            if rows.shape != (new_size - old_size, base.shape[1]) or not torch.isfinite(rows).all():
                raise AssertionError(f"strategy {cfg.strategy} returned bad rows {tuple(rows.shape)} for {name}")
            weight[old_size:new_size] = rows.to(weight.dtype)
            if not torch.equal(weight[:old_size], base):
                raise AssertionError(f"base rows of {name} changed during resize")
            stats[name] = {
                "base_row_norm_mean": float(base.double().norm(dim=1).mean()),
                "new_row_norm_mean": float(rows.double().norm(dim=1).mean()) if len(rows) else None,
            }
    model.config.vocab_size = rows_after
    if corpus is not None and corpus.cache.get("report"):
        stats["strategy_report"] = corpus.cache["report"]
    return stats
