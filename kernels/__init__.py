"""Fused linear cross-entropy over a large vocabulary, without a full logits tensor.

`linear_cross_entropy(hidden, weight, target, ...)` computes cross_entropy(hidden @ weight.T + bias, target)
chunk by chunk over tokens: a Triton row kernel on CUDA tensors, a chunked PyTorch path elsewhere.
`linear_cross_entropy_reference` is the plain full-logits computation the tests compare against.
"""

from kernels.loss import FusedLinearCrossEntropyLoss
from kernels.ops.linear_cross_entropy import (
    IMPLS,
    LinearCrossEntropyOutput,
    linear_cross_entropy,
    resolve_impl,
)
from kernels.reference import linear_cross_entropy_reference

__all__ = [
    "IMPLS",
    "FusedLinearCrossEntropyLoss",
    "LinearCrossEntropyOutput",
    "linear_cross_entropy",
    "linear_cross_entropy_reference",
    "resolve_impl",
]
