"""Ignored rows, the dispatcher, the module wrapper and input validation, on both paths."""

import pytest
import torch
from lce_cases import make_inputs, rel_err

from kernels import (
    FusedLinearCrossEntropyLoss,
    linear_cross_entropy,
    linear_cross_entropy_reference,
    resolve_impl,
)
from kernels.ops.linear_cross_entropy import default_chunk_size

IMPLS = ["chunked", pytest.param("triton", marks=pytest.mark.skipif(
    torch.cuda.is_available(), reason="interpreter run; the GPU file covers the compiled kernel"))]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_all_ignored_is_zero_not_nan(seed, impl, reduction):
    hidden, weight, bias, target = make_inputs(6, 16, 300, bias=True, ignore_frac=1.0)
    out = linear_cross_entropy(hidden, weight, target, bias, impl=impl, reduction=reduction,
                               label_smoothing=0.1, z_loss_weight=1e-3, softcap=3.0)
    assert torch.equal(out.loss, torch.zeros_like(out.loss))
    grads = torch.autograd.grad(out.loss.sum(), (hidden, weight, bias))
    for g in grads:
        assert torch.equal(g, torch.zeros_like(g))


@pytest.mark.parametrize("impl", IMPLS)
def test_ignored_rows_contribute_nothing(seed, impl):
    hidden, weight, bias, target = make_inputs(10, 16, 400, ignore_frac=0.0)
    target[[1, 4, 5]] = -100
    # Huge hidden values in ignored rows must not leak through as inf/NaN.
    with torch.no_grad():
        hidden[[1, 4, 5]] = 1e4
    out = linear_cross_entropy(hidden, weight, target, impl=impl, reduction="none")
    (dh,) = torch.autograd.grad(out.loss.sum(), (hidden,))
    assert torch.equal(out.loss[[1, 4, 5]], torch.zeros(3))
    assert torch.equal(dh[[1, 4, 5]], torch.zeros(3, 16))
    keep = torch.tensor([0, 2, 3, 6, 7, 8, 9])
    sub = linear_cross_entropy(hidden[keep], weight, target[keep], impl=impl, reduction="none").loss
    assert rel_err(out.loss[keep], sub) < 1e-6


def test_mean_matches_torch_cross_entropy(seed):
    hidden, weight, bias, target = make_inputs(40, 16, 321, bias=True)
    out = linear_cross_entropy(hidden, weight, target, bias, label_smoothing=0.1)
    logits = hidden.double() @ weight.double().t() + bias.double()
    want = torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1)
    assert rel_err(out.loss, want) < 1e-5


def test_module_wrapper_and_auto(seed):
    hidden, weight, bias, target = make_inputs(12, 16, 200)
    module = FusedLinearCrossEntropyLoss(reduction="sum", z_loss_weight=1e-3)
    out = module(hidden, weight, target)
    ref = linear_cross_entropy_reference(hidden, weight, target, reduction="sum", z_loss_weight=1e-3)
    assert rel_err(out.loss, ref[0]) < 1e-5 and rel_err(out.z_loss, ref[1]) < 1e-5
    assert not out.z_loss.requires_grad
    assert resolve_impl("auto", torch.device("cpu")) == "chunked"
    assert "z_loss_weight=0.001" in repr(module)


def test_backward_twice_is_refused(seed):
    hidden, weight, bias, target = make_inputs(4, 8, 50, ignore_frac=0.0)
    loss = linear_cross_entropy(hidden, weight, target).loss
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        loss.backward()


def test_only_weight_needs_grad(seed):
    hidden, weight, bias, target = make_inputs(9, 8, 60)
    hidden = hidden.detach()
    loss = linear_cross_entropy(hidden, weight, target, chunk_size=4).loss
    (gw,) = torch.autograd.grad(loss, (weight,))
    ref = linear_cross_entropy_reference(hidden, weight, target)[0]
    (rw,) = torch.autograd.grad(ref, (weight,))
    assert rel_err(gw, rw) < 1e-5


@pytest.mark.parametrize("bad, match", [
    ({"target": "out_of_range"}, "outside"),
    ({"reduction": "avg"}, "reduction"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"softcap": 0.0}, "softcap"),
    ({"impl": "cuda"}, "impl"),
    ({"target": "wrong_shape"}, "target"),
    ({"chunk_size": 0}, "chunk_size"),
])
def test_bad_input_is_one_clear_error(bad, match):
    hidden, weight, bias, target = make_inputs(5, 8, 40)
    kwargs = {k: v for k, v in bad.items() if k != "target"}
    if bad.get("target") == "out_of_range":
        target[2] = 40
    elif bad.get("target") == "wrong_shape":
        target = target[:4]
    with pytest.raises(ValueError, match=match):
        linear_cross_entropy(hidden, weight, target, **kwargs)


def test_triton_on_cpu_without_interpreter_is_refused(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="needs CUDA"):
        resolve_impl("triton", torch.device("cpu"))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("accum_dtype", [None, torch.float32])
def test_plain_backward_fills_grad(seed, impl, accum_dtype):
    # loss.backward() passes grad_output == 1, the path that skips scaling; the weight gradient starts from the
    # first chunk's product (no zero fill), so a stale buffer would show here.
    hidden, weight, bias, target = make_inputs(23, 16, 301, bias=True)
    out = linear_cross_entropy(hidden, weight, target, bias, impl=impl, chunk_size=5, accum_dtype=accum_dtype)
    out.loss.backward()
    ref = linear_cross_entropy_reference(hidden, weight, target, bias)[0]
    want = torch.autograd.grad(ref, (hidden, weight, bias))
    for got, w in zip((hidden.grad, weight.grad, bias.grad), want, strict=True):
        assert rel_err(got, w) < 1e-4


def test_no_rows_gives_zero_gradients(seed):
    hidden, weight, bias, target = make_inputs(0, 8, 40, bias=True)
    out = linear_cross_entropy(hidden, weight, target, bias, reduction="sum")
    grads = torch.autograd.grad(out.loss, (hidden, weight, bias))
    assert out.loss.item() == 0.0 and grads[0].shape == (0, 8)
    assert torch.count_nonzero(grads[1]) == 0 and torch.count_nonzero(grads[2]) == 0


def test_default_chunk_size():
    # Liger's rule (logits chunk ~ hidden's size, power of two), floored at 1024 rows, capped at N.
    assert default_chunk_size(4096, 4096, 69104, "cuda") == 1024
    assert default_chunk_size(32768, 4096, 69104, "cuda") == 2048
    assert default_chunk_size(300, 4096, 69104, "cuda") == 300
    assert default_chunk_size(8192, 512, 69104, "cpu") == 1024
