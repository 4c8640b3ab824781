"""Resize a causal LM of a known family (llama, mistral, qwen2: research/model/families.py) to an expanded tokenizer
and fill the new rows with an init strategy."""

import torch

from research.config.init import InitConfig
from research.errors import GraftError
from research.init.splits import Split
from research.init.strategies import STRATEGIES, InitContext


def resize_and_init(model, new_size: int, splits: list[Split], cfg: InitConfig) -> dict:
    """Grow input embeddings and lm_head to `new_size` rows; base rows stay bit-identical.

    With untied embeddings both matrices get their own new rows, each built from its own base rows;
    with tied embeddings the single shared matrix is initialised once.
    """
    emb = model.get_input_embeddings().weight
    old_size = emb.shape[0]
    if new_size < old_size:
        raise GraftError(f"tokenizer has {new_size} pieces but the model already has {old_size} rows")
    if len(splits) != new_size - old_size:
        raise GraftError(f"{len(splits)} new pieces for {new_size - old_size} new rows: tokenizer and model "
                         "disagree on the base vocabulary size")
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    base_emb = emb.detach().clone()
    head = model.get_output_embeddings()
    base_head = None if tied or head is None else head.weight.detach().clone()

    model.resize_token_embeddings(new_size, mean_resizing=False)
    if tied and head is not None and model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
        raise AssertionError("resizing untied the tied input and output embeddings")
    matrices = {"embed_tokens": (model.get_input_embeddings().weight, base_emb)}
    if base_head is not None:
        matrices["lm_head"] = (model.get_output_embeddings().weight, base_head)

    stats = {"strategy": cfg.strategy, "old_size": old_size, "new_size": new_size, "tied": tied}
    fn = STRATEGIES[cfg.strategy]
    with torch.no_grad():
        for k, (name, (weight, base)) in enumerate(matrices.items()):
            gen = torch.Generator().manual_seed(cfg.seed + k)
            rows = fn(InitContext(base_rows=base, splits=splits, cfg=cfg, generator=gen, matrix=name))
            if rows.shape != (new_size - old_size, base.shape[1]) or not torch.isfinite(rows).all():
                raise AssertionError(f"strategy {cfg.strategy} returned bad rows {tuple(rows.shape)} for {name}")
            weight[old_size:] = rows.to(weight.dtype)
            if not torch.equal(weight[:old_size], base):
                raise AssertionError(f"base rows of {name} changed during resize")
            stats[name] = {
                "base_row_norm_mean": float(base.double().norm(dim=1).mean()),
                "new_row_norm_mean": float(rows.double().norm(dim=1).mean()) if len(rows) else None,
            }
    model.config.vocab_size = new_size
    return stats
