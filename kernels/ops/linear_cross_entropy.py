"""Linear cross-entropy chunk by chunk over tokens: the chunk loop, its autograd.Function, the dispatcher.

For each chunk of rows: logits = hidden_chunk @ weight.T (+ bias) into one reused buffer, a row kernel turns
it into per-row losses and overwrites it with d(loss)/d(logits), then two matmuls fold it into the gradients of
hidden (written per chunk) and of weight/bias (accumulated). No N x V tensor ever exists; see
`default_chunk_size` for how many rows a chunk holds.

With reduction "mean"/"sum" the gradients are computed during forward (backward only scales them by the
scalar grad_output, and not at all when it is 1). With "none", grad_output weighs each row differently, so
backward runs the loop again with those weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import torch

from kernels.ops.ce_rows_torch import ce_rows_torch

IMPLS = ("auto", "triton", "chunked")
REDUCTIONS = ("mean", "sum", "none")
# Below these, per-chunk fixed costs dominate: each chunk reads and writes the whole V x H weight gradient, and
# thin chunks starve the d(hidden) matmul (M = rows). Measured on an H200 (bf16, H=4096, V=69,104): 256-row
# chunks cost 1.67x the matmul floor at N=4096, 1024-row chunks 1.26x. On 2 CPU cores (fp32, N=8192, H=512)
# a forward+backward took 32-35 CPU seconds with 1024-row chunks, 36-39 with 256 or 512.
MIN_CHUNK_ROWS = {"cuda": 1024, "cpu": 1024}
SLAB_ROWS = 8192


class LinearCrossEntropyOutput(NamedTuple):
    loss: torch.Tensor
    """Cross-entropy plus z-loss, reduced; differentiable."""
    z_loss: torch.Tensor
    """The z-loss term alone (z_loss_weight * lse^2), reduced the same way; detached, for logging."""


@dataclass(frozen=True)
class _Options:
    ignore_index: int
    reduction: str
    label_smoothing: float
    z_loss_weight: float
    softcap: float | None
    impl: str
    chunk_size: int | None
    accum_dtype: torch.dtype | None


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def resolve_impl(impl: str, device: torch.device) -> str:
    """`auto` is Triton on CUDA tensors and the chunked PyTorch path elsewhere."""
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r}: must be one of {IMPLS}")
    if impl == "auto":
        return "triton" if device.type == "cuda" else "chunked"
    if impl == "triton" and device.type != "cuda" and not _interpreting():
        raise ValueError(f"impl='triton' needs CUDA tensors (got {device.type}); use impl='chunked' or 'auto'")
    return impl


def _rows_fn(impl: str):
    if impl == "triton":
        from kernels.ops.ce_rows_triton import ce_rows_triton

        return ce_rows_triton
    return ce_rows_torch


def default_chunk_size(n_rows: int, hidden_size: int, vocab_size: int, device_type: str = "cuda") -> int:
    """Rows per chunk: enough that the chunk's logits (rows x V) take about as much memory as hidden (N x H),
    rounded up to a power of two (the rule Liger-Kernel uses), but at least MIN_CHUNK_ROWS and at most N.

    The floor trades memory for time: at V=69,104 a 1024-row bf16 chunk is 135 MiB, where the weight gradient
    it is summed into is V x H (540 MiB at H=4096), and it cuts the per-chunk overheads by 4x against
    256-row chunks. Pass chunk_size to trade the other way."""
    rows = -(-n_rows * hidden_size // vocab_size)
    rows = 1 << max(rows - 1, 0).bit_length()
    floor = MIN_CHUNK_ROWS.get(device_type, MIN_CHUNK_ROWS["cuda"])
    return max(1, min(n_rows, max(rows, floor)))


def _accumulate_grad_weight(acc: torch.Tensor, dlogits: torch.Tensor, h: torch.Tensor, first: bool) -> None:
    if acc.dtype == dlogits.dtype:
        if first:
            # The first chunk writes the buffer: no zero fill, and the matmul reads no accumulator.
            torch.mm(dlogits.t(), h, out=acc)
        else:
            torch.addmm(acc, dlogits.t(), h, out=acc)
        return
    if first:
        acc.zero_()
    if acc.is_cuda:
        try:
            # bf16 operands, fp32 accumulator, no weight-sized temporary (torch >= 2.8 on CUDA).
            torch.addmm(acc, dlogits.t(), h, out_dtype=acc.dtype, out=acc)
            return
        except (TypeError, RuntimeError, NotImplementedError):
            pass
    # Slabs over the vocabulary bound the low-precision temporary to SLAB_ROWS x H.
    for v0 in range(0, acc.shape[0], SLAB_ROWS):
        acc[v0:v0 + SLAB_ROWS].add_(dlogits[:, v0:v0 + SLAB_ROWS].t() @ h)


def _chunk_loop(hidden, weight, bias, target, opts: _Options, row_scale, need_h, need_w, need_b):
    """Run the loop; returns per-row losses, per-row z-losses, and the gradients asked for (else None)."""
    n_rows, hidden_size = hidden.shape
    vocab = weight.shape[0]
    dev = hidden.device
    rows_fn = _rows_fn(opts.impl)
    compute_grad = row_scale is not None and (need_h or need_w or need_b)
    chunk = opts.chunk_size or default_chunk_size(n_rows, hidden_size, vocab, dev.type)
    chunk = max(1, min(chunk, n_rows))
    loss_rows = torch.empty(n_rows, dtype=torch.float32, device=dev)
    z_rows = torch.empty(n_rows, dtype=torch.float32, device=dev)
    grad_h = torch.empty_like(hidden) if compute_grad and need_h else None
    acc_dtype = opts.accum_dtype or weight.dtype
    grad_w = torch.empty(weight.shape, dtype=acc_dtype, device=dev) if compute_grad and need_w else None
    grad_b = torch.zeros(vocab, dtype=torch.float32, device=dev) if compute_grad and need_b else None
    buf = torch.empty((chunk, vocab), dtype=hidden.dtype, device=dev) if n_rows else None
    w_t = weight.t()
    logits = None
    for start in range(0, n_rows, chunk):
        end = min(start + chunk, n_rows)
        h = hidden[start:end]
        logits = buf[: end - start]
        if bias is not None:
            torch.addmm(bias, h, w_t, out=logits)
        else:
            torch.mm(h, w_t, out=logits)
        rows_fn(
            logits, target[start:end], loss_rows[start:end], z_rows[start:end],
            row_scale[start:end] if compute_grad else None,
            ignore_index=opts.ignore_index, label_smoothing=opts.label_smoothing,
            z_loss_weight=opts.z_loss_weight, softcap=opts.softcap,
        )
        if not compute_grad:
            continue
        if grad_h is not None:
            torch.mm(logits, weight, out=grad_h[start:end])
        if grad_w is not None:
            _accumulate_grad_weight(grad_w, logits, h, first=start == 0)
        if grad_b is not None:
            grad_b.add_(logits.sum(0, dtype=torch.float32))
    # Free the chunk buffer (the last slice too) before a weight-sized dtype conversion can allocate.
    del buf, logits
    if grad_w is not None and n_rows == 0:
        grad_w.zero_()
    if grad_w is not None and grad_w.dtype != weight.dtype:
        grad_w = grad_w.to(weight.dtype)
    if grad_b is not None:
        grad_b = grad_b.to(bias.dtype)
    return loss_rows, z_rows, grad_h, grad_w, grad_b


class LinearCrossEntropyFunction(torch.autograd.Function):
    """(hidden [N, H], weight [V, H], bias [V] | None, target [N] int64, options) -> (loss, z_loss)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, target, opts: _Options):
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and bias is not None
        any_grad = need_h or need_w or need_b
        valid = target != opts.ignore_index
        n_valid = valid.sum()
        ctx.opts, ctx.needs = opts, (need_h, need_w, need_b)
        ctx.consumed = False
        if opts.reduction == "none":
            loss_rows, z_rows, *_ = _chunk_loop(hidden, weight, bias, target, opts, None, False, False, False)
            ctx.save_for_backward(hidden, weight, bias, target)
            ctx.mark_non_differentiable(z_rows)
            return loss_rows, z_rows
        if opts.reduction == "mean":
            scale = (1.0 / n_valid.clamp(min=1).float()).reshape(1)
        else:
            scale = torch.ones(1, dtype=torch.float32, device=hidden.device)
        row_scale = scale.expand(hidden.shape[0]) if any_grad else None
        loss_rows, z_rows, grad_h, grad_w, grad_b = _chunk_loop(
            hidden, weight, bias, target, opts, row_scale, need_h, need_w, need_b
        )
        loss = loss_rows.sum() * scale[0]
        z_loss = z_rows.sum() * scale[0]
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        ctx.mark_non_differentiable(z_loss)
        return loss, z_loss

    @staticmethod
    def backward(ctx, grad_loss, grad_z):
        if ctx.consumed:
            raise RuntimeError("linear_cross_entropy: backward ran twice through the same graph; "
                               "its gradients are computed in forward and consumed by the first backward")
        ctx.consumed = True
        opts = ctx.opts
        need_h, need_w, need_b = ctx.needs
        if opts.reduction == "none":
            hidden, weight, bias, target = ctx.saved_tensors
            row_scale = grad_loss.reshape(-1).float().contiguous()
            _, _, grad_h, grad_w, grad_b = _chunk_loop(
                hidden, weight, bias, target, opts, row_scale, need_h, need_w, need_b
            )
        else:
            grad_h, grad_w, grad_b = ctx.saved_tensors
            # grad_output is 1 for a plain loss.backward(): then skip a read-modify-write of the weight-sized
            # gradient (one host sync, as Liger-Kernel does). Otherwise scale in place: these buffers belong
            # to this graph node alone.
            if not bool(torch.equal(grad_loss, torch.ones_like(grad_loss))):
                for g in (grad_h, grad_w, grad_b):
                    if g is not None:
                        g.mul_(grad_loss.to(g.dtype))
        return grad_h, grad_w, grad_b, None, None


def linear_cross_entropy(
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
    impl: str = "auto",
    chunk_size: int | None = None,
    accum_dtype: torch.dtype | None = None,
) -> LinearCrossEntropyOutput:
    """cross_entropy(hidden @ weight.T + bias, target) without materialising the logits.

    hidden: [..., H] (fp32 or bf16); weight: [V, H]; bias: [V] or None; target: [...] integer class ids or
    ignore_index. reduction "mean" averages over non-ignored tokens (0 when all are ignored, never NaN);
    "none" returns per-token losses shaped like target. label_smoothing as torch.nn.functional.cross_entropy;
    z_loss_weight adds z * logsumexp^2 per token (also returned alone, detached); softcap applies
    cap * tanh(logits / cap) before the softmax. Every matmul and the softmax accumulate in fp32; accum_dtype
    is the dtype the weight gradient is summed in across token chunks: None keeps the weight's dtype (bf16:
    one rounding per chunk, no extra memory); torch.float32 adds a V x H fp32 buffer (measured on an H200 at
    H=4096: about 1.1 GB more and 7-40% slower).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r}: must be one of {REDUCTIONS}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing={label_smoothing!r}: must be in [0, 1)")
    if softcap is not None and not softcap > 0:
        raise ValueError(f"softcap={softcap!r}: must be positive or None")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size!r}: must be a positive number of rows")
    if weight.dim() != 2 or hidden.shape[-1] != weight.shape[1]:
        raise ValueError(f"hidden {tuple(hidden.shape)} and weight {tuple(weight.shape)}: "
                         "weight must be [vocab, hidden] with hidden's last dimension")
    if hidden.shape[:-1] != target.shape:
        raise ValueError(f"target {tuple(target.shape)} must match hidden's leading dimensions "
                         f"{tuple(hidden.shape[:-1])}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias {tuple(bias.shape)} must be [vocab]={weight.shape[0]}")
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise ValueError(f"target dtype {target.dtype}: must be an integer tensor of class ids")
    if hidden.dtype != weight.dtype:
        raise ValueError(f"hidden dtype {hidden.dtype} differs from weight dtype {weight.dtype}")
    resolved = resolve_impl(impl, hidden.device)
    vocab = weight.shape[0]
    flat_t = target.reshape(-1).long().contiguous()
    bad = (flat_t != ignore_index) & ((flat_t < 0) | (flat_t >= vocab))
    if bool(bad.any()):
        value = int(flat_t[bad][0])
        raise ValueError(f"target holds {value}, outside [0, {vocab}) and not ignore_index={ignore_index}")
    opts = _Options(ignore_index, reduction, float(label_smoothing), float(z_loss_weight),
                    None if softcap is None else float(softcap), resolved, chunk_size, accum_dtype)
    h = hidden.reshape(-1, hidden.shape[-1]).contiguous()
    loss, z_loss = LinearCrossEntropyFunction.apply(h, weight.contiguous(), bias, flat_t, opts)
    if reduction == "none":
        loss, z_loss = loss.view(target.shape), z_loss.view(target.shape)
    return LinearCrossEntropyOutput(loss, z_loss)
