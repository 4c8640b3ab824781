"""nn.Module wrapper around `kernels.linear_cross_entropy` (the op lives in kernels/ops/)."""

from __future__ import annotations

import torch
from torch import nn

from kernels.ops.linear_cross_entropy import LinearCrossEntropyOutput, linear_cross_entropy


class FusedLinearCrossEntropyLoss(nn.Module):
    """loss = FusedLinearCrossEntropyLoss(...)(hidden, lm_head.weight, target[, bias]).

    Holds the options only; the LM head's weight stays with the model, so tied embeddings and sharded
    parameters keep working. `forward` returns (loss, z_loss); see `kernels.linear_cross_entropy`.
    """

    def __init__(
        self,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        z_loss_weight: float = 0.0,
        softcap: float | None = None,
        impl: str = "auto",
        chunk_size: int | None = None,
        accum_dtype: torch.dtype | None = None,
    ):
        super().__init__()
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing
        self.z_loss_weight = z_loss_weight
        self.softcap = softcap
        self.impl = impl
        self.chunk_size = chunk_size
        self.accum_dtype = accum_dtype

    def forward(self, hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor,
                bias: torch.Tensor | None = None) -> LinearCrossEntropyOutput:
        return linear_cross_entropy(
            hidden, weight, target, bias,
            ignore_index=self.ignore_index, reduction=self.reduction,
            label_smoothing=self.label_smoothing, z_loss_weight=self.z_loss_weight, softcap=self.softcap,
            impl=self.impl, chunk_size=self.chunk_size, accum_dtype=self.accum_dtype,
        )

    def extra_repr(self) -> str:
        return (f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
                f"label_smoothing={self.label_smoothing}, z_loss_weight={self.z_loss_weight}, "
                f"softcap={self.softcap}, impl={self.impl!r}")
