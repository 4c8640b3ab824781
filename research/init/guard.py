"""The `guarded` strategy's output rows: subword means plus one shared vector, fitted so the base language keeps
its step-0 distribution while the domain is predicted as well as the shift allows.

At step 0 a base-language context puts probability on the new tokens only through their output rows, and any mass
they take is taken from the base tokens: the base language's loss rises by -log(1 - mass). Every new output row
gets the same vector w added, so in a context with final hidden state h all new-token logits move together by
h . w. w is the minimiser of

    domain loss(w) + lambda * base-language loss increase(w)

where the domain loss is the next-token loss on `init.guard_tokens` tokens of init.domain_text (cut by the expanded
tokenizer and read through the new input rows: the contexts the new output rows will meet at step 0), and the
base-language loss increase is the mean -log(1 - new-token mass) over as many tokens of init.base_text (read as
base ids). Both are convex in w (log-sum-exp of affine functions), each in closed form per context, so L-BFGS
solves it on cached hidden states. lambda doubles from 1 until the mean new-token mass in base-language contexts is
at most `init.guard_mass`; summary.json records lambda, the masses and both losses, and whether the target was met.
"""

import logging

import torch
import torch.nn.functional as F

from research.errors import GraftError
from research.init.probe import final_hidden, windows_of

log = logging.getLogger("graft.init")
WINDOW = 128
CHUNK = 2048


@torch.no_grad()
def _base_stats(corpus, rows_base, start, tokens):
    """Base-language contexts: hidden states and lse(new) - lse(base) at w = 0."""
    wins = windows_of([corpus.to_base(d) for d in corpus.base], corpus.bos(), WINDOW, tokens)
    h = final_hidden(corpus.model, wins).double()
    gap = torch.cat([torch.logsumexp(h[i:i + CHUNK] @ start.T, 1) - torch.logsumexp(h[i:i + CHUNK] @ rows_base.T, 1)
                     for i in range(0, len(h), CHUNK)])
    return h, gap


@torch.no_grad()
def _domain_stats(corpus, rows_base, start, tokens):
    """Domain contexts with a next token: hidden states, the target's logit, lse(base), lse(new), target is new."""
    wins = windows_of(corpus.domain, corpus.bos(), WINDOW + 1, tokens)
    decoder, base = corpus.model.get_decoder(), corpus.base_size
    hs, ys = [], []
    for w in wins:
        h = decoder(input_ids=torch.tensor([w])).last_hidden_state[0, :-1].double()
        hs.append(h)
        ys.append(torch.tensor(w[1:]))
    h, y = torch.cat(hs), torch.cat(ys)
    full = torch.cat([rows_base, start])
    z = (h * full[y]).sum(1)
    lse_b = torch.cat([torch.logsumexp(h[i:i + CHUNK] @ rows_base.T, 1) for i in range(0, len(h), CHUNK)])
    lse_n = torch.cat([torch.logsumexp(h[i:i + CHUNK] @ start.T, 1) for i in range(0, len(h), CHUNK)])
    return h, z, lse_b, lse_n, (y >= base).double()


def guarded_rows(ctx, start: torch.Tensor) -> torch.Tensor:
    corpus, cfg = ctx.corpus, ctx.cfg
    rows_base, new0 = ctx.base_rows.double(), start.double()
    hb, gap = _base_stats(corpus, rows_base, new0, cfg.guard_tokens)
    hd, z, lse_b, lse_n, is_new = _domain_stats(corpus, rows_base, new0, cfg.guard_tokens)
    if not len(hb) or not len(hd):
        raise GraftError("init.base_text / init.domain_text: too little text to calibrate init=guarded")

    def domain_loss(w):
        s = hd @ w
        return (-(z + is_new * s) + torch.logaddexp(lse_b, lse_n + s)).mean()

    def base_increase(w):
        return F.softplus(gap + hb @ w).mean()

    def base_mass(w) -> float:
        return float(torch.sigmoid(gap + hb @ w).mean())

    def fit(lam: float, w0: torch.Tensor) -> torch.Tensor:
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe", tolerance_grad=1e-9)

        def closure():
            opt.zero_grad()
            loss = domain_loss(w) + lam * base_increase(w)
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        return w.detach()

    w, lam = torch.zeros(rows_base.shape[1], dtype=torch.float64), 1.0
    w = fit(lam, w)
    while base_mass(w) > cfg.guard_mass and lam < 1e6:
        lam *= 2
        w = fit(lam, w)
    zero = torch.zeros_like(w)
    after = base_mass(w)
    corpus.cache.setdefault("report", {})["guarded"] = {
        "lambda": lam, "target": cfg.guard_mass, "reached": after <= cfg.guard_mass,
        "base_mass_before": base_mass(zero), "base_mass_after": after,
        "domain_loss_before": float(domain_loss(zero)), "domain_loss_after": float(domain_loss(w)),
        "base_loss_increase_before": float(base_increase(zero)), "base_loss_increase_after": float(base_increase(w)),
        "base_tokens": len(hb), "domain_tokens": len(hd), "shift_norm": float(w.norm())}
    log.info("guarded: new-token mass in base-language contexts %.4g -> %.4g (target %.4g), domain loss %.4f -> %.4f",
             base_mass(zero), after, cfg.guard_mass, float(domain_loss(zero)), float(domain_loss(w)))
    return (new0 + w).to(start.dtype)
