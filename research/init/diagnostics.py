"""Step-0 diagnostics of an initialised model: what the new rows do before any training.

Computed by init_model for every strategy (init.diagnostics) and written to summary.json (`diagnostics`), the run
report and W&B:

- held-out bits per byte per language (init.heldout_texts), of the base model (the base tokenizer's ids, and the
  model's logits over the base ids only: its base rows and body are the base model's, so this is the base model's
  distribution exactly) and of the initialised model (the expanded tokenizer);
- on the base language's held-out text (init.diagnostics_base_language), read as base ids: KL(base || initialised)
  of the next-token distributions, and the probability mass the new tokens take. The base logits are unchanged, so
  the KL of every position equals -log(1 - its new-token mass); both are computed and reported;
- row norms of the new rows against the base rows, per matrix;
- for a seeded sample of new tokens, their nearest base tokens by cosine of the input rows.
"""

import logging

import torch

from research.eval import heldout
from research.eval.inference import Scorer
from research.init.probe import pad_right, windows_of

log = logging.getLogger("graft.init")
WINDOW = 256
NEAREST = 5


class BaseView(torch.nn.Module):
    """The model with its logits cut to the first `n` ids: the base model, when only base ids go in."""

    def __init__(self, model, n: int):
        super().__init__()
        self.model, self.n = model, n

    def forward(self, **kw):
        out = self.model(**kw)
        out.logits = out.logits[..., :self.n]
        return out


def _stats(x: torch.Tensor) -> dict:
    x = x.double()
    return {"mean": float(x.mean()), "std": float(x.std()) if len(x) > 1 else 0.0, "min": float(x.min()),
            "max": float(x.max())}


def row_norms(model, old: int, new: int) -> dict:
    out = {"embed_tokens": model.get_input_embeddings().weight.detach()}
    head = model.get_output_embeddings()
    if head is not None and head.weight is not out["embed_tokens"]:
        out["lm_head"] = head.weight.detach()
    return {name: {"base": _stats(w[:old].norm(dim=1)), "new": _stats(w[old:new].norm(dim=1))}
            for name, w in out.items()}


def nearest(model, tokenizer, old: int, new: int, sample: int, seed: int) -> list[dict]:
    if not sample or new <= old:
        return []
    w = model.get_input_embeddings().weight.detach().float()
    ids = sorted(torch.randperm(new - old, generator=torch.Generator().manual_seed(seed))[:sample].add(old).tolist())
    base = torch.nn.functional.normalize(w[:old], dim=1)
    out = []
    for i in ids:
        sims = base @ torch.nn.functional.normalize(w[i], dim=0)
        top = sims.topk(NEAREST)
        out.append({"id": i, "token": tokenizer.convert_ids_to_tokens(i),
                    "nearest": [[tokenizer.convert_ids_to_tokens(int(j)), round(float(s), 4)]
                                for s, j in zip(top.values, top.indices, strict=True)]})
    return out


@torch.no_grad()
def base_language_shift(model, windows: list[list[int]], old: int, batch: int = 8) -> dict:
    """KL(base || initialised) and new-token mass per predicted position, summarised; `windows` hold base ids."""
    kls, masses = [], []
    for b in range(0, len(windows), batch):
        ids, mask = pad_right(windows[b:b + batch])
        z = model(input_ids=ids, attention_mask=mask).logits.float()[mask.bool()]
        log_q = torch.log_softmax(z, dim=-1)
        log_p = torch.log_softmax(z[:, :old], dim=-1)
        kls.append((log_p.exp() * (log_p - log_q[:, :old])).sum(-1))
        masses.append(log_q[:, old:].logsumexp(-1).exp() if z.shape[1] > old else torch.zeros(len(z)))
    kl, mass = torch.cat(kls), torch.cat(masses)
    return {"positions": len(kl), "kl_mean": float(kl.double().mean()),
            "kl_minus_formula_max": float((kl.double() + torch.log1p(-mass.double())).abs().max()),
            "new_token_mass": {**_stats(mass), "p90": float(mass.double().quantile(0.9))}}


def diagnose(model, tokenizer, base_tokenizer, corpus_to_base, cfg, heldout_texts: dict, old: int, new: int) -> dict:
    """The diagnostics dict (see the module docstring). `base_tokenizer` None: no base bits per byte."""
    ic = cfg.init
    was = model.training
    model.eval()
    out: dict = {"heldout": {}, "base_language": ic.diagnostics_base_language, "chars": ic.diagnostics_chars}
    try:
        for lang, path in heldout_texts.items():
            text = heldout.read_text(str(path), ic.diagnostics_chars, lang, key="init.heldout_texts")
            row = {}
            for key, m, tok in (("base", BaseView(model, old), base_tokenizer), ("init", model, tokenizer)):
                if tok is None:
                    continue
                nll, n = heldout.score(Scorer(m, tok, batch_size=8, progress=False), heldout.windows(tok, text, WINDOW))
                row[key] = heldout.summarize(nll, n, text)["bits_per_byte"]
            if "base" in row:
                row["change"] = row["init"] / row["base"] - 1.0
            out["heldout"][lang] = row
            if lang == ic.diagnostics_base_language:
                ids = tokenizer(text, add_special_tokens=False).input_ids
                bos = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
                out["base_language_shift"] = base_language_shift(
                    model, windows_of([corpus_to_base(ids)], bos, WINDOW, len(ids) + 1), old)
        out["row_norms"] = row_norms(model, old, new)
        out["nearest"] = nearest(model, tokenizer, old, new, ic.diagnostics_sample, ic.seed)
    finally:
        model.train(was)
    return out


def flat(diag: dict) -> dict:
    """The diagnostics' scalars under W&B-style keys (init/heldout/en/init, init/kl_mean, ...)."""
    out = {}
    for lang, row in diag.get("heldout", {}).items():
        out |= {f"init/heldout/{lang}/{k}": v for k, v in row.items()}
    shift = diag.get("base_language_shift")
    if shift:
        out["init/kl_mean"] = shift["kl_mean"]
        out |= {f"init/new_token_mass/{k}": v for k, v in shift["new_token_mass"].items()}
    for name, r in diag.get("row_norms", {}).items():
        out |= {f"init/row_norm/{name}/{part}_mean": r[part]["mean"] for part in ("base", "new")}
    return out
