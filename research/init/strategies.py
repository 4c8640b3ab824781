"""Init strategies, a registry keyed by the `init` config group's choice name.

Each strategy maps the base rows of one matrix (input embeddings or lm_head, V_base x H) and the base
splits of the new pieces to the new rows (V_new x H). Adding a strategy is one function here, registered
with `@register("<name>")`, plus one YAML file `conf/init/<name>.yaml` setting `strategy: <name>`:
`STRATEGIES` is the only list of names (the `init` schema validates `init.strategy` against it).

A strategy that reads text or runs the model says so with `@needs("domain_text", ...)` (the `init` keys it needs:
init_model stops with one line naming a missing one before any work) and gets `ctx.corpus`
(research/init/corpus.py): the encoded texts, the resized model and a cache shared by both matrices.

The schema imports this module when a config is composed, so it imports nothing heavy at module level:
each strategy imports torch inside.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from research.registry import Registry

if TYPE_CHECKING:
    import torch

    from research.config.init import InitConfig
    from research.init.corpus import InitCorpus
    from research.init.splits import Split


@dataclass
class InitContext:
    base_rows: torch.Tensor
    splits: list[Split]
    cfg: InitConfig
    generator: torch.Generator
    matrix: str = "embed_tokens"
    """Which matrix the rows are for: embed_tokens (input) or lm_head (output)."""
    corpus: InitCorpus | None = None
    """The texts and model, for the strategies registered with @needs (None for the others)."""
    tied: bool = False
    """Input and output embeddings are one matrix (initialised once, as embed_tokens)."""


Strategy = Callable[[InitContext], "torch.Tensor"]
STRATEGIES: Registry = Registry("init strategy")
"""name -> strategy, in registration order."""
register = STRATEGIES.register


def needs(*keys: str):
    """Mark a strategy as reading these `init` keys (texts): `fn.needs`, checked by InitConfig.missing_corpus."""
    def deco(fn):
        fn.needs = keys
        return fn

    return deco


def _mean_of(rows: torch.Tensor, id_lists: list[list[int]]) -> torch.Tensor:
    import torch

    # One index_add over all pieces instead of a Python loop of small means.
    flat = torch.tensor([i for ids in id_lists for i in ids], dtype=torch.long)
    owner = torch.repeat_interleave(torch.arange(len(id_lists)), torch.tensor([len(ids) for ids in id_lists]))
    acc = torch.zeros(len(id_lists), rows.shape[1], dtype=torch.float64)
    acc.index_add_(0, owner, rows.index_select(0, flat).double())
    counts = torch.tensor([len(ids) for ids in id_lists], dtype=torch.float64).unsqueeze(1)
    return (acc / counts).to(rows.dtype)


@register("subword_mean")
def subword_mean(ctx: InitContext) -> torch.Tensor:
    return _mean_of(ctx.base_rows, [s.clean_ids for s in ctx.splits])


@register("subword_mean_in")
def subword_mean_in(ctx: InitContext) -> torch.Tensor:
    """Subword mean for input rows, mean of all rows for output rows.

    Output rows built from subword means score ordinary contexts as well as real pieces do, so at step 0
    they take probability mass from the base pieces (English loss rises although the base logits are
    unchanged); one average row scores low everywhere. Input rows still start from meaningful subwords.
    With tied embeddings there is one matrix, and it gets the subword mean.
    """
    return mean_all(ctx) if ctx.matrix == "lm_head" else subword_mean(ctx)


@register("subword_mean_ref")
def subword_mean_ref(ctx: InitContext) -> torch.Tensor:
    return _mean_of(ctx.base_rows, [s.ids for s in ctx.splits])


@register("mean_all")
def mean_all(ctx: InitContext) -> torch.Tensor:
    mean = ctx.base_rows.double().mean(0)
    return mean.expand(len(ctx.splits), -1).to(ctx.base_rows.dtype).clone()


@register("mvn")
def mvn(ctx: InitContext) -> torch.Tensor:
    """Sample from N(mean, cov_scale * covariance) of the base rows, as transformers' mean_resizing does."""
    import torch

    rows = ctx.base_rows.double()
    mean = rows.mean(0)
    centred = rows - mean
    cov = centred.T @ centred / rows.shape[0] * ctx.cfg.cov_scale
    # A covariance that is not positive definite (rank-deficient rows) cannot be sampled: add the
    # smallest diagonal jitter that makes its Cholesky factor exist.
    jitter = 0.0
    eye = torch.eye(cov.shape[0], dtype=torch.float64)
    for _ in range(10):
        chol, info = torch.linalg.cholesky_ex(cov + jitter * eye)
        if info.item() == 0:
            break
        jitter = max(jitter * 10, 1e-12 * float(cov.diagonal().mean()) + 1e-30)
    z = torch.randn(len(ctx.splits), rows.shape[1], generator=ctx.generator, dtype=torch.float64)
    return (mean + z @ chol.T).to(ctx.base_rows.dtype)


@register("random")
def random(ctx: InitContext) -> torch.Tensor:
    import torch

    std = float(ctx.base_rows.double().std()) * ctx.cfg.std_scale
    z = torch.randn(len(ctx.splits), ctx.base_rows.shape[1], generator=ctx.generator, dtype=torch.float64)
    return (z * std).to(ctx.base_rows.dtype)


@register("zero")
def zero(ctx: InitContext) -> torch.Tensor:
    import torch

    return torch.zeros(len(ctx.splits), ctx.base_rows.shape[1], dtype=ctx.base_rows.dtype)


@register("noisy_mean")
def noisy_mean(ctx: InitContext) -> torch.Tensor:
    """Mean of all base rows plus N(0, 1/H) noise per element (LLaMA-Factory's default for new tokens)."""
    import torch

    z = torch.randn(len(ctx.splits), ctx.base_rows.shape[1], generator=ctx.generator, dtype=torch.float64)
    return (mean_all(ctx).double() + z / ctx.base_rows.shape[1] ** 0.5).to(ctx.base_rows.dtype)


@register("eeve")
def eeve(ctx: InitContext) -> torch.Tensor:
    """EEVE (Kim et al., 2024): input rows are the subword mean, output rows the output row of the first subword
    (a new token is then predicted where its first piece was). Tied: the subword mean."""
    if ctx.matrix != "lm_head":
        return subword_mean(ctx)
    import torch

    first = torch.tensor([s.clean_ids[0] for s in ctx.splits], dtype=torch.long)
    return ctx.base_rows.index_select(0, first).clone()


@register("focus")
@needs("domain_text")
def focus(ctx: InitContext) -> torch.Tensor:
    """FOCUS (Dobler & de Melo, 2023): each new row a sparsemax-weighted combination of the base rows of the base
    tokens most similar to it in fastText embeddings trained on init.domain_text (research/init/focus.py)."""
    from research.init.focus import focus_rows

    return focus_rows(ctx)


@register("token_distill")
@needs("domain_text")
def token_distill(ctx: InitContext) -> torch.Tensor:
    """Token distillation (AweDist, 2025): input rows fitted so the model's hidden states on domain contexts with
    the new token match those on its base split (research/init/distill.py); output rows the mean of all rows, as in
    subword_mean_in."""
    if ctx.matrix == "lm_head":
        return mean_all(ctx)
    from research.init.distill import distill_rows

    return distill_rows(ctx)


@register("guarded")
@needs("domain_text", "base_text")
def guarded(ctx: InitContext) -> torch.Tensor:
    """Subword-mean rows; the output rows get one shared vector, fitted so the domain's step-0 loss is lowest while the
    new tokens take at most init.guard_mass of the probability in base-language contexts (research/init/guard.py):
    the base language's next-token distributions barely change. Tied: the subword mean, unshifted."""
    if ctx.matrix != "lm_head":
        return subword_mean(ctx)
    from research.init.guard import guarded_rows

    return guarded_rows(ctx, subword_mean(ctx))
