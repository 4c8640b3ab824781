"""Init strategies, a registry keyed by the `init` config group's choice name.

Each strategy maps the base rows of one matrix (input embeddings or lm_head, V_base x H) and the base
splits of the new pieces to the new rows (V_new x H). Adding a strategy is one function here, registered
with `@register("<name>")`, plus one YAML file `conf/init/<name>.yaml` setting `strategy: <name>`:
`STRATEGIES` is the only list of names (the `init` schema validates `init.strategy` against it).

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
    from research.init.splits import Split


@dataclass
class InitContext:
    base_rows: torch.Tensor
    splits: list[Split]
    cfg: InitConfig
    generator: torch.Generator
    matrix: str = "embed_tokens"
    """Which matrix the rows are for: embed_tokens (input) or lm_head (output)."""


Strategy = Callable[[InitContext], "torch.Tensor"]
STRATEGIES: Registry = Registry("init strategy")
"""name -> strategy, in registration order."""
register = STRATEGIES.register


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
