"""The `guarded` strategy's output rows: subword means moved away from base-language contexts.

At step 0 a base-language context puts probability on the new tokens only through their output rows, and any mass
they take is taken from the base tokens: the base language's loss rises by -log(1 - mass). Every new output row is
moved by the same vector beta * v, so in a context with final hidden state h all new-token logits move by
beta * (h . v). v is a logistic regression through the origin that tells domain hidden states (positive) from
base-language ones (negative), on `init.guard_tokens` tokens of each text read by the base model: the new tokens'
logits fall in base-language contexts and rise in domain ones. beta is the smallest shift (bisection, in closed form
per context) that brings the mean new-token mass over the base-language tokens to `init.guard_mass`; 0 when the
subword means already take less. Where no shift reaches it (contexts on the wrong side of the regression gain mass
as beta grows), beta is the one with the least mass, and summary.json says the target was not reached.
"""

import logging

import torch

from research.errors import GraftError
from research.init.probe import final_hidden, logsumexp_rows, windows_of

log = logging.getLogger("graft.init")
WINDOW = 128


def _hidden(corpus, docs: list[list[int]], tokens: int) -> torch.Tensor:
    wins = windows_of([corpus.to_base(d) for d in docs], corpus.bos(), WINDOW, tokens)
    return final_hidden(corpus.model, wins)


def direction(h_base: torch.Tensor, h_domain: torch.Tensor, steps: int = 100) -> torch.Tensor:
    """Unit v of a logistic regression without intercept (L2 1e-4): sigmoid(h . v) says "domain"."""
    x = torch.cat([h_base, h_domain]).double()
    scale = x.norm(dim=1).mean()
    x = x / scale
    y = torch.cat([torch.zeros(len(h_base)), torch.ones(len(h_domain))]).double()
    weight = torch.cat([torch.full((len(h_base),), 0.5 / len(h_base)), torch.full((len(h_domain),), 0.5 / len(h_domain))])
    v = (x[len(h_base):].mean(0) - x[:len(h_base)].mean(0)).clone().requires_grad_(True)
    opt = torch.optim.LBFGS([v], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(x @ v, y, reduction="none") * weight).sum() \
            + 1e-4 * (v ** 2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    v = v.detach()
    return (v / v.norm().clamp_min(1e-12)).float()


def guarded_rows(ctx, start: torch.Tensor) -> torch.Tensor:
    corpus, cfg = ctx.corpus, ctx.cfg
    h_base = _hidden(corpus, corpus.base, cfg.guard_tokens)
    h_domain = _hidden(corpus, corpus.domain, cfg.guard_tokens)
    if not len(h_base) or not len(h_domain):
        raise GraftError("init.base_text / init.domain_text: too little text to calibrate init=guarded")
    v = direction(h_base, h_domain)
    lse_base = logsumexp_rows(h_base, ctx.base_rows)
    lse_new = logsumexp_rows(h_base, start)
    s = h_base @ v

    def mass(beta: float) -> float:
        return float(torch.sigmoid(lse_new + beta * s - lse_base).double().mean())

    target, before = cfg.guard_mass, mass(0.0)
    beta = 0.0
    if before > target:
        grid = [0.0] + [2.0 ** k for k in range(-4, 21)]
        masses = [mass(b) for b in grid]
        reach = next((k for k, m in enumerate(masses) if m <= target), None)
        if reach is None:  # the least mass on the grid, refined between its neighbours
            k = min(range(len(grid)), key=masses.__getitem__)
            lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
            for _ in range(60):
                a, b = lo + (hi - lo) / 3, hi - (hi - lo) / 3
                lo, hi = (lo, b) if mass(a) <= mass(b) else (a, hi)
            beta = (lo + hi) / 2
        else:
            lo, hi = grid[reach - 1], grid[reach]
            for _ in range(60):
                mid = (lo + hi) / 2
                lo, hi = (lo, mid) if mass(mid) <= target else (mid, hi)
            beta = hi
    after = mass(beta)
    wrong_side = float((s > 0).double().mean())
    corpus.cache.setdefault("report", {})["guarded"] = {
        "beta": beta, "target": target, "reached": after <= target, "base_mass_before": before,
        "base_mass_after": after, "base_tokens": len(h_base), "domain_tokens": len(h_domain),
        "base_contexts_on_domain_side": wrong_side, "domain_contexts_on_domain_side": float((h_domain @ v > 0).double().mean()),
        "mean_logit_shift_base": beta * float(s.mean()), "mean_logit_shift_domain": beta * float((h_domain @ v).mean())}
    log.info("guarded: shift %.4g moves new-token mass in base-language contexts %.4g -> %.4g (target %.4g%s)", beta,
             before, after, target, "" if after <= target else ", not reached")
    return (start.double() + beta * v.double()).to(start.dtype)
