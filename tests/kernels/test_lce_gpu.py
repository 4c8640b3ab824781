"""The compiled Triton kernel on a CUDA GPU (run with TRITON_INTERPRET=0); skipped without one."""

import os

import pytest
import torch
from lce_cases import compare, make_inputs, rel_err

from kernels import linear_cross_entropy, linear_cross_entropy_reference

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"),
                       reason="needs a CUDA GPU and TRITON_INTERPRET=0"),
]


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-3), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("opts", [{}, {"label_smoothing": 0.1, "z_loss_weight": 1e-3, "softcap": 30.0},
                                  {"reduction": "none"}, {"reduction": "sum"}])
def test_full_vocab(seed, dtype, tol, opts):
    # fp32 matmuls may run in tf32 on the GPU: tolerance ~1e-3.
    hidden, weight, bias, target = make_inputs(1031, 512, 69104, dtype=dtype, device="cuda", bias=True)
    compare(hidden, weight, bias, target, impl="triton", tol=tol, **opts)


@pytest.mark.parametrize("accum_dtype", [torch.float32, None])
def test_large_bf16_against_chunked(seed, accum_dtype):
    hidden, weight, bias, target = make_inputs(4096, 4096, 69104, dtype=torch.bfloat16, device="cuda")
    a = linear_cross_entropy(hidden, weight, target, impl="triton", accum_dtype=accum_dtype)
    ga = torch.autograd.grad(a.loss, (hidden, weight))
    b = linear_cross_entropy(hidden, weight, target, impl="chunked", accum_dtype=torch.float32)
    gb = torch.autograd.grad(b.loss, (hidden, weight))
    assert rel_err(a.loss, b.loss) < 1e-3
    for x, y in zip(ga, gb, strict=True):
        assert rel_err(x, y) < 2e-2


def test_chunk_over_2_pow_31_elements(seed):
    # One chunk of 32768 x 69104 logits: offsets past int32 must not wrap.
    hidden, weight, _, target = make_inputs(32768, 64, 69104, dtype=torch.bfloat16, device="cuda")
    a = linear_cross_entropy(hidden, weight, target, impl="triton", chunk_size=32768, reduction="none")
    b = linear_cross_entropy(hidden, weight, target, impl="chunked", chunk_size=2048, reduction="none")
    assert rel_err(a.loss, b.loss) < 1e-3
    ga = torch.autograd.grad(a.loss.sum(), (hidden,))[0]
    gb = torch.autograd.grad(b.loss.sum(), (hidden,))[0]
    assert rel_err(ga, gb) < 2e-2


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_all_ignored(seed, reduction):
    hidden, weight, bias, target = make_inputs(300, 128, 69104, dtype=torch.bfloat16, device="cuda",
                                               ignore_frac=1.0)
    out = linear_cross_entropy(hidden, weight, target, impl="triton", reduction=reduction)
    dh, dw = torch.autograd.grad(out.loss.sum(), (hidden, weight))
    assert torch.count_nonzero(out.loss) == 0 and torch.count_nonzero(dh) == 0 and torch.count_nonzero(dw) == 0


def test_plain_backward_default_chunking(seed):
    # loss.backward() (grad_output exactly 1, no rescale) with the default chunking on a ragged N: two chunks,
    # the first written into the weight gradient without a zero fill.
    hidden, weight, bias, target = make_inputs(1500, 256, 69104, dtype=torch.float32, device="cuda", bias=True)
    out = linear_cross_entropy(hidden, weight, target, bias, impl="triton")
    out.loss.backward()
    ref = linear_cross_entropy_reference(hidden, weight, target, bias)[0]
    want = torch.autograd.grad(ref, (hidden, weight, bias))
    for got, w in zip((hidden.grad, weight.grad, bias.grad), want, strict=True):
        assert rel_err(got, w) < 2e-3
