"""Triton row kernel: online logsumexp over the vocabulary, then the gradient written over the logits.

One program per row. Pass 1 streams the row in BLOCK-wide slices keeping a running max and rescaled sum
(online logsumexp) and, with label smoothing, the sum of the (softcapped) logits. Pass 2 streams the row again
and stores row_scale * dloss/dlogits in place, so the caller's matmuls read the gradient from the same buffer.
All arithmetic is fp32 whatever the storage dtype; only the final store converts.

Import this module only when the Triton path is used: `triton.jit` reads TRITON_INTERPRET when the kernel is
defined, and tests set it before the first import.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

MAX_BLOCK = 32768


@triton.jit
def _ce_rows_kernel(
    X, stride_x, T, LOSS, ZLOSS, SCALE, stride_scale,
    n_cols, ignore_index, label_smoothing, z_loss_weight, softcap,
    HAS_SOFTCAP: tl.constexpr, HAS_SMOOTHING: tl.constexpr, HAS_Z: tl.constexpr,
    COMPUTE_GRAD: tl.constexpr, BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    x_row = X + row * stride_x
    y = tl.load(T + row).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    if y == ignore_index:
        tl.store(LOSS + row, 0.0)
        tl.store(ZLOSS + row, 0.0)
        if COMPUTE_GRAD:
            zeros = tl.zeros([BLOCK], dtype=tl.float32).to(X.dtype.element_ty)
            for start in range(0, n_cols, BLOCK):
                cols = start + offs
                tl.store(x_row + cols, zeros, mask=cols < n_cols)
    else:
        m = -float("inf")
        d = 0.0
        s_sum = 0.0
        for start in range(0, n_cols, BLOCK):
            cols = start + offs
            mask = cols < n_cols
            x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
            if HAS_SOFTCAP:
                # tanh from exp (no libdevice under the interpreter); e in (0, 1] never overflows.
                u = x / softcap
                e = tl.exp(-2.0 * tl.abs(u))
                th = (1.0 - e) / (1.0 + e)
                x = softcap * tl.where(u >= 0, th, -th)
            if HAS_SMOOTHING:
                s_sum += tl.sum(tl.where(mask, x, 0.0), axis=0)
            x = tl.where(mask, x, -float("inf"))
            m_new = tl.maximum(m, tl.max(x, axis=0))
            d = d * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
            m = m_new
        lse = m + tl.log(d)

        s_y = tl.load(x_row + y).to(tl.float32)
        if HAS_SOFTCAP:
            # Scalar names of their own: reusing the block loops' names would change a loop-carried type.
            u_y = s_y / softcap
            e_y = tl.exp(-2.0 * tl.abs(u_y))
            th_y = (1.0 - e_y) / (1.0 + e_y)
            s_y = softcap * tl.where(u_y >= 0, th_y, -th_y)
        loss = lse - (1.0 - label_smoothing) * s_y
        if HAS_SMOOTHING:
            loss -= label_smoothing / n_cols * s_sum
        z = 0.0
        if HAS_Z:
            z = z_loss_weight * lse * lse
            loss += z
        tl.store(LOSS + row, loss)
        tl.store(ZLOSS + row, z)

        if COMPUTE_GRAD:
            scale = tl.load(SCALE + row * stride_scale).to(tl.float32)
            p_coef = scale
            if HAS_Z:
                p_coef = scale * (1.0 + 2.0 * z_loss_weight * lse)
            smooth = label_smoothing / n_cols * scale
            hit = (1.0 - label_smoothing) * scale
            for start in range(0, n_cols, BLOCK):
                cols = start + offs
                mask = cols < n_cols
                x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
                if HAS_SOFTCAP:
                    u = x / softcap
                    e = tl.exp(-2.0 * tl.abs(u))
                    th = (1.0 - e) / (1.0 + e)
                    th = tl.where(u >= 0, th, -th)
                    x = softcap * th
                g = tl.exp(x - lse) * p_coef
                if HAS_SMOOTHING:
                    g -= smooth
                g = tl.where(cols == y, g - hit, g)
                if HAS_SOFTCAP:
                    g = g * (1.0 - th * th)
                tl.store(x_row + cols, g.to(X.dtype.element_ty), mask=mask)


def ce_rows_triton(
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
    """Same contract as `ce_rows_torch`: per-row losses, and with row_scale the scaled gradient in place."""
    n_rows, n_cols = logits.shape
    if n_rows == 0:
        return
    assert logits.stride(1) == 1 and target.is_contiguous()
    block = min(MAX_BLOCK, triton.next_power_of_2(n_cols))
    compute_grad = row_scale is not None
    scale = row_scale if compute_grad else loss_out  # any fp32 pointer; never read without grad
    _ce_rows_kernel[(n_rows,)](
        logits, logits.stride(0), target, loss_out, z_out, scale, scale.stride(0) if compute_grad else 0,
        n_cols, ignore_index, float(label_smoothing), float(z_loss_weight),
        float(softcap) if softcap is not None else 1.0,
        HAS_SOFTCAP=softcap is not None, HAS_SMOOTHING=label_smoothing > 0, HAS_Z=z_loss_weight != 0,
        COMPUTE_GRAD=compute_grad, BLOCK=block,
        num_warps=32 if block >= 32768 else (16 if block >= 8192 else 8 if block >= 2048 else 4),
    )
