"""Chunked PyTorch path against the float64 full-logits reference on odd shapes."""

import pytest
import torch
from lce_cases import compare, make_inputs


@pytest.mark.parametrize("v", [1000, 32003, 69104])
@pytest.mark.parametrize("h", [16, 72])
@pytest.mark.parametrize("n", [1, 7, 129])
def test_shapes_fp32(seed, n, h, v):
    hidden, weight, bias, target = make_inputs(n, h, v, bias=(n == 7))
    compare(hidden, weight, bias, target, impl="chunked", tol=1e-4, chunk_size=50)


@pytest.mark.parametrize("opts", [
    {"label_smoothing": 0.1},
    {"z_loss_weight": 1e-3},
    {"softcap": 2.5},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.2, "z_loss_weight": 1e-2, "softcap": 4.0, "reduction": "none"},
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("v", [1000, 32003])
def test_options(seed, v, opts):
    hidden, weight, bias, target = make_inputs(37, 24, v, bias=True)
    compare(hidden, weight, bias, target, impl="chunked", tol=1e-4, chunk_size=16, **opts)


@pytest.mark.parametrize("accum_dtype", [torch.float32, None])
def test_bf16(seed, accum_dtype):
    hidden, weight, bias, target = make_inputs(65, 32, 5003, dtype=torch.bfloat16, bias=True)
    compare(hidden, weight, bias, target, impl="chunked", tol=2e-2, chunk_size=16, accum_dtype=accum_dtype,
            label_smoothing=0.1, z_loss_weight=1e-3)


def test_batched_shape_and_default_chunking(seed):
    hidden, weight, bias, target = make_inputs(2 * 33, 16, 1000, shape=(2, 33))
    out, _ = compare(hidden, weight, bias, target, impl="chunked", tol=1e-4, reduction="none")
    assert out.loss.shape == (2, 33)
