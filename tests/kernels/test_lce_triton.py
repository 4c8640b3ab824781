"""The Triton row kernel, run by Triton's interpreter on CPU (compiled on a GPU with TRITON_INTERPRET=0).

The interpreter costs ~1-2 ms per block iteration, so the full 69,104 vocabulary gets few rows and the
edge cases use small vocabularies.
"""

import pytest
import torch
from lce_cases import compare, make_inputs, rel_err

from kernels import linear_cross_entropy

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="CPU interpreter tests; GPU has test_lce_gpu")


@pytest.mark.parametrize("bias", [False, True])
def test_full_vocab_few_rows(seed, bias):
    hidden, weight, b, target = make_inputs(3, 16, 69104, bias=bias, ignore_frac=0.0)
    compare(hidden, weight, b, target, impl="triton", tol=1e-4, label_smoothing=0.1)


@pytest.mark.parametrize("opts", [
    {},
    {"label_smoothing": 0.1},
    {"z_loss_weight": 1e-3},
    {"softcap": 2.5},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.2, "z_loss_weight": 1e-2, "softcap": 4.0, "reduction": "none"},
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "plain")
def test_options_small_vocab(seed, opts):
    # V=1000 is not a power of two (masked tail); chunk_size=5 gives a ragged last chunk.
    hidden, weight, bias, target = make_inputs(13, 24, 1000, bias=True)
    compare(hidden, weight, bias, target, impl="triton", tol=1e-4, chunk_size=5, **opts)


def test_multi_block_rows(seed, monkeypatch):
    # Several vocabulary blocks per row exercise the online logsumexp's rescaling.
    import kernels.ops.ce_rows_triton as rows

    monkeypatch.setattr(rows, "MAX_BLOCK", 256)
    hidden, weight, bias, target = make_inputs(6, 16, 1500)
    compare(hidden, weight, bias, target, impl="triton", tol=1e-4, softcap=3.0, label_smoothing=0.1,
            z_loss_weight=1e-3)


def test_bf16(seed):
    # bf16 storage, fp32 math; the interpreter truncates on store, hence the looser tolerance.
    hidden, weight, bias, target = make_inputs(9, 32, 3001, dtype=torch.bfloat16, bias=True)
    compare(hidden, weight, bias, target, impl="triton", tol=2e-2, chunk_size=4, z_loss_weight=1e-3)


def test_matches_chunked(seed):
    hidden, weight, bias, target = make_inputs(11, 16, 777, bias=True)
    opts = dict(label_smoothing=0.05, softcap=5.0, z_loss_weight=1e-4, chunk_size=4)
    a = linear_cross_entropy(hidden, weight, target, bias, impl="triton", **opts)
    b = linear_cross_entropy(hidden, weight, target, bias, impl="chunked", **opts)
    ga = torch.autograd.grad(a.loss, (hidden, weight, bias))
    gb = torch.autograd.grad(b.loss, (hidden, weight, bias))
    assert rel_err(a.loss, b.loss) < 1e-6
    for x, y in zip(ga, gb, strict=True):
        assert rel_err(x, y) < 1e-5


def test_loss_only_without_grad(seed):
    hidden, weight, bias, target = make_inputs(8, 16, 500)
    with torch.no_grad():
        out = linear_cross_entropy(hidden, weight, target, impl="triton")
        ref = linear_cross_entropy(hidden, weight, target, impl="chunked")
    assert rel_err(out.loss, ref.loss) < 1e-6
