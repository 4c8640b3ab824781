"""Plain full-logits linear cross-entropy: the definition every fast path is tested against.

It materialises all N x V logits (in the input dtype promoted to `dtype`) and lets autograd do the backward,
so it shares no code with the chunked paths.
"""

from __future__ import annotations

import torch


def linear_cross_entropy_reference(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss_weight: float = 0.0,
    softcap: float | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (loss, z_loss) with the same conventions as `kernels.linear_cross_entropy`.

    loss per token = (1 - eps) * (lse - s_y) + eps * mean_j (lse - s_j) + z * lse^2, where s = softcap(logits);
    ignored tokens count zero; `mean` divides by the number of non-ignored tokens (0 when there are none).
    """
    h = hidden.reshape(-1, hidden.shape[-1]).to(dtype)
    t = target.reshape(-1)
    logits = h @ weight.to(dtype).t()
    if bias is not None:
        logits = logits + bias.to(dtype)
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    lse = torch.logsumexp(logits, dim=-1)
    logp = logits - lse[:, None]
    valid = t != ignore_index
    safe_t = torch.where(valid, t, torch.zeros_like(t))
    nll = -logp.gather(1, safe_t[:, None]).squeeze(1)
    smooth = -logp.mean(dim=-1)
    z_rows = z_loss_weight * lse * lse
    rows = (1.0 - label_smoothing) * nll + label_smoothing * smooth + z_rows
    zero = torch.zeros((), dtype=dtype, device=rows.device)
    rows = torch.where(valid, rows, zero)
    z_rows = torch.where(valid, z_rows, zero).detach()
    if reduction == "none":
        return rows.view(target.shape), z_rows.view(target.shape)
    if reduction == "sum":
        return rows.sum(), z_rows.sum()
    n = valid.sum().clamp(min=1)
    return rows.sum() / n, z_rows.sum() / n
