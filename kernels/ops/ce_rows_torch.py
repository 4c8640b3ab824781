"""Cross-entropy over one chunk of logits rows in PyTorch, overwriting the chunk with its gradient.

The portable twin of `ce_rows_triton`: same arguments, same results. Work happens in place on an fp32 view
of the chunk so that a chunk costs one logits-sized buffer (two with softcap, whose derivative needs s).
"""

from __future__ import annotations

import torch


def ce_rows_torch(
    logits: torch.Tensor,
    target: torch.Tensor,
    loss_out: torch.Tensor,
    z_out: torch.Tensor,
    row_scale: torch.Tensor | None,
    *,
    ignore_index: int,
    label_smoothing: float,
    z_loss_weight: float,
    softcap: float | None,
) -> None:
    """Write per-row loss (z-loss included) and z-loss; with row_scale, overwrite logits with
    row_scale * d(loss)/d(logits) (zero on ignored rows). Without it, logits may be clobbered."""
    n_cols = logits.shape[1]
    x = logits if logits.dtype == torch.float32 else logits.float()
    valid = target != ignore_index
    safe_t = torch.where(valid, target, torch.zeros_like(target))[:, None]
    s_keep = None
    if softcap is not None:
        x.div_(softcap).tanh_().mul_(softcap)
        if row_scale is not None:
            s_keep = x.clone()
    s_y = x.gather(1, safe_t).squeeze(1)
    s_sum = x.sum(1) if label_smoothing > 0 else None
    m = x.amax(1, keepdim=True)
    x.sub_(m).exp_()
    d = x.sum(1, keepdim=True)
    lse = (m + d.log()).squeeze(1)
    rows = lse - (1.0 - label_smoothing) * s_y
    if s_sum is not None:
        rows = rows - (label_smoothing / n_cols) * s_sum
    z_rows = z_loss_weight * lse * lse
    rows = rows + z_rows
    loss_out.copy_(torch.where(valid, rows, torch.zeros_like(rows)))
    z_out.copy_(torch.where(valid, z_rows, torch.zeros_like(z_rows)))
    if row_scale is None:
        return
    scale = torch.where(valid, row_scale.float(), torch.zeros_like(lse))
    # softmax * (1 + 2 z lse): the z-loss term's gradient is 2 z lse * softmax.
    x.mul_(((1.0 + 2.0 * z_loss_weight * lse) * scale)[:, None] / d)
    if label_smoothing > 0:
        x.sub_(((label_smoothing / n_cols) * scale)[:, None])
    x.scatter_add_(1, safe_t, (-(1.0 - label_smoothing) * scale)[:, None])
    if s_keep is not None:
        # d softcap(z)/dz = 1 - tanh^2 = 1 - (s / cap)^2
        x.mul_(s_keep.div_(softcap).square_().neg_().add_(1.0))
    if x is not logits:
        logits.copy_(x)
