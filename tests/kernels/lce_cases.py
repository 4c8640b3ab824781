"""Shared input builders and the comparison against the float64 reference."""

import torch

from kernels import linear_cross_entropy, linear_cross_entropy_reference


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    assert torch.isfinite(a).all(), "non-finite values"
    return ((a - b).norm() / b.norm().clamp(min=1e-30)).item()


def make_inputs(n, h, v, *, dtype=torch.float32, device="cpu", bias=False, ignore_frac=0.25, shape=None):
    # Logit scale ~ 3 so the softmax is neither flat nor one-hot.
    hidden = (torch.randn(n, h, device=device) * (3.0 / h ** 0.5)).to(dtype).requires_grad_()
    weight = torch.randn(v, h, device=device).to(dtype).requires_grad_()
    b = (torch.randn(v, device=device) * 0.5).to(dtype).requires_grad_() if bias else None
    target = torch.randint(0, v, (n,), device=device)
    target[torch.rand(n, device=device) < ignore_frac] = -100
    if shape is not None:
        hidden = hidden.detach().reshape(*shape, h).requires_grad_()
        target = target.reshape(shape)
    return hidden, weight, b, target


def compare(hidden, weight, bias, target, *, impl, tol, **opts):
    """Run impl and the float64 reference; return {name: relative error} for loss and each gradient."""
    out = linear_cross_entropy(hidden, weight, target, bias, impl=impl, **opts)
    ref = linear_cross_entropy_reference(hidden, weight, target, bias, **{
        k: v for k, v in opts.items() if k not in ("chunk_size", "accum_dtype")})
    inputs = [x for x in (hidden, weight, bias) if x is not None]
    g = torch.rand_like(out.loss) + 0.5  # a grad_output that is not 1 (a tensor for reduction='none')
    got = torch.autograd.grad(out.loss, inputs, g)
    want = torch.autograd.grad(ref[0], inputs, g.double())
    names = ["hidden", "weight", "bias"][: len(inputs)]
    errs = {"loss": rel_err(out.loss, ref[0]), "z_loss": rel_err(out.z_loss, ref[1]) if ref[1].abs().sum() else 0.0}
    errs.update({f"d_{n}": rel_err(a, b) for n, a, b in zip(names, got, want, strict=True)})
    for key, value in errs.items():
        assert value < tol, f"{key}: relative error {value:.2e} >= {tol:.0e} ({errs})"
    assert out.loss.shape == ref[0].shape
    return out, errs
