"""FOCUS (Dobler & de Melo, 2023): new rows as sparse combinations of the rows of similar shared tokens.

An auxiliary fastText model (skipgram, character n-grams) is trained on init.domain_text cut into tokens by the
expanded tokenizer, locally and deterministically (one thread; nothing is downloaded). The shared tokens are the
base tokens that occur at least init.focus_min_count times in that text. For each new token, the cosine
similarities of its fastText vector to the shared tokens' vectors, divided by init.focus_temperature, go through
sparsemax; its row (in each matrix) is the weighted sum of those tokens' base rows. A new token whose vector is zero
(no known character n-gram) keeps its subword mean; the count is in summary.json.
"""

import logging
import os
import tempfile
from collections import Counter

import numpy as np
import torch

from research.errors import GraftError

log = logging.getLogger("graft.init")
CANDIDATES = 64
"""Most similar shared tokens sparsemax chooses among (its support is far smaller)."""
_SPACE = str.maketrans({c: "\u2423" for c in " \t\n\r\v\f\0"})
"""fastText splits words on these; a token string never should."""


def sparsemax(z: torch.Tensor) -> torch.Tensor:
    """Sparsemax (Martins & Astudillo, 2016) along the last dimension."""
    zs, _ = torch.sort(z, dim=-1, descending=True)
    k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    cum = zs.cumsum(-1)
    support = (1 + k * zs) > cum
    k_z = support.sum(-1, keepdim=True)
    tau = (cum.gather(-1, k_z - 1) - 1) / k_z.to(z.dtype)
    return torch.clamp(z - tau, min=0)


def _train(docs: list[list[str]], cfg):
    import fasttext

    fd, path = tempfile.mkstemp(suffix=".txt", prefix="graft-focus-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for doc in docs:
                f.write(" ".join(doc) + "\n")
        return fasttext.train_unsupervised(path, model="skipgram", dim=cfg.focus_dim, epoch=cfg.focus_epochs,
                                           minCount=1, thread=1, verbose=0)
    finally:
        os.unlink(path)


def _weights(ctx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(shared base ids [S], candidate index into them [V_new, C], sparsemax weights [V_new, C]; rows of new tokens
    with no vector have all-zero weights)."""
    corpus, cfg = ctx.corpus, ctx.cfg
    tok = corpus.tokenizer
    docs = [[t.translate(_SPACE) for t in tok.convert_ids_to_tokens(ids)] for ids in corpus.domain]
    counts = Counter(t for d in docs for t in d)
    base_tokens = [t.translate(_SPACE) for t in tok.convert_ids_to_tokens(list(range(corpus.base_size)))]
    shared = [i for i, t in enumerate(base_tokens) if counts[t] >= cfg.focus_min_count]
    if len(shared) < 2:
        raise GraftError(f"init.domain_text: only {len(shared)} base tokens occur {cfg.focus_min_count}+ times in it "
                         "(init.focus_min_count); FOCUS needs shared tokens to combine")
    model = _train(docs, cfg)
    new_tokens = [t.translate(_SPACE) for t in
                  tok.convert_ids_to_tokens(list(range(corpus.base_size, corpus.base_size + len(ctx.splits))))]

    def vectors(tokens):
        v = torch.from_numpy(np.stack([model.get_word_vector(t) for t in tokens])).float()
        return v / v.norm(dim=1, keepdim=True).clamp_min(1e-12), v.norm(dim=1) > 0

    shared_v, _ = vectors([base_tokens[i] for i in shared])
    new_v, known = vectors(new_tokens)
    c = min(CANDIDATES, len(shared))
    idx = torch.empty(len(new_tokens), c, dtype=torch.long)
    w = torch.empty(len(new_tokens), c, dtype=torch.float64)
    for i in range(0, len(new_tokens), 2048):
        sims = new_v[i:i + 2048] @ shared_v.T
        top, arg = sims.topk(c, dim=1)
        idx[i:i + 2048], w[i:i + 2048] = arg, sparsemax(top.double() / cfg.focus_temperature)
    w[~known] = 0
    support = (w > 0).sum(1).double()
    corpus.cache.setdefault("report", {})["focus"] = {
        "shared_tokens": len(shared), "fasttext_words": len(model.words), "new_tokens_without_vector": int((~known).sum()),
        "support_mean": float(support[known].mean()) if known.any() else 0.0}
    log.info("focus: %d shared tokens, mean support %.2f, %d new tokens without a vector", len(shared),
             corpus.cache["report"]["focus"]["support_mean"], int((~known).sum()))
    return torch.tensor(shared, dtype=torch.long), idx, w


def focus_rows(ctx) -> torch.Tensor:
    from research.init.strategies import subword_mean

    cache = ctx.corpus.cache
    if "focus" not in cache:
        cache["focus"] = _weights(ctx)
    shared, idx, w = cache["focus"]
    base = ctx.base_rows.double()[shared]
    rows = torch.empty(len(idx), base.shape[1], dtype=torch.float64)
    step = max(1, 2**24 // (idx.shape[1] * base.shape[1]))  # [step, C, H] float64 stays near 128 MB
    for i in range(0, len(idx), step):
        rows[i:i + step] = torch.einsum("nc,nch->nh", w[i:i + step], base[idx[i:i + step]])
    missing = w.sum(1) == 0
    if missing.any():
        rows[missing] = subword_mean(ctx).double()[missing]
    return rows.to(ctx.base_rows.dtype)
