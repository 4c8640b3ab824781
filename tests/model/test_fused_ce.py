"""research.model.fused_ce on a tiny random transformers LlamaForCausalLM: same loss and gradients as the
plain forward, no logits, and the no-labels path untouched."""

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from research.model.fused_ce import apply_fused_ce
from tests.kernels.lce_cases import rel_err


def maybe_apply_fused_ce(model, model_cfg):
    """What training does with the `model` config group (research/train/token_loss.py, enable_fused_ce):
    the fused loss only when `fused_ce: true`, with `fused_ce_impl`."""
    if model_cfg.fused_ce:
        apply_fused_ce(model, model_cfg.fused_ce_impl)
    return model


def tiny_llama(tie=False):
    cfg = LlamaConfig(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=tie)
    return LlamaForCausalLM(cfg).float()


def batch(vocab=1000, b=2, t=17):
    input_ids = torch.randint(0, vocab, (b, t))
    labels = input_ids.clone()
    labels[0, :5] = -100  # a prompt that is not trained on
    return input_ids, labels


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("impl", ["chunked", pytest.param("triton", marks=pytest.mark.skipif(
    torch.cuda.is_available(), reason="interpreter run"))])
@pytest.mark.parametrize("tie", [False, True])
def test_fused_forward_matches_plain(seed, impl, tie):
    plain = tiny_llama(tie)
    fused = apply_fused_ce(copy.deepcopy(plain), impl)
    input_ids, labels = batch()
    want = plain(input_ids=input_ids, labels=labels)
    got = fused(input_ids=input_ids, labels=labels)
    assert got.logits is None
    assert rel_err(got.loss, want.loss) < 1e-5
    want.loss.backward()
    got.loss.backward()
    gw, gg = grads(plain), grads(fused)
    assert gw.keys() == gg.keys()
    for name in gw:
        assert rel_err(gg[name], gw[name]) < 1e-4, name


def test_num_items_in_batch_is_sum_over_count(seed):
    plain = tiny_llama()
    fused = apply_fused_ce(copy.deepcopy(plain), "chunked")
    input_ids, labels = batch()
    want = plain(input_ids=input_ids, labels=labels, num_items_in_batch=50).loss
    got = fused(input_ids=input_ids, labels=labels, num_items_in_batch=50).loss
    assert rel_err(got, want) < 1e-5


def test_all_ignored_batch_gives_zero_loss_and_grads(seed):
    fused = apply_fused_ce(tiny_llama(), "chunked")
    input_ids, _ = batch()
    out = fused(input_ids=input_ids, labels=torch.full_like(input_ids, -100))
    assert out.loss.item() == 0.0
    out.loss.backward()
    for name, p in fused.named_parameters():
        assert p.grad is None or torch.count_nonzero(p.grad) == 0, name


def test_without_labels_forward_is_unchanged(seed):
    plain = tiny_llama()
    fused = apply_fused_ce(apply_fused_ce(copy.deepcopy(plain)))  # idempotent
    input_ids, _ = batch()
    with torch.no_grad():
        a = plain(input_ids=input_ids).logits
        b = fused(input_ids=input_ids).logits
    assert torch.equal(a, b)
    gen = fused.generate(input_ids[:1, :4], max_new_tokens=3, do_sample=False)
    assert gen.shape == (1, 7)


def test_config_switch():
    from research.config.model import ModelConfig

    model = maybe_apply_fused_ce(tiny_llama(), ModelConfig())
    assert not hasattr(model, "_forward_without_fused_ce")
    model = maybe_apply_fused_ce(model, ModelConfig(fused_ce=True, fused_ce_impl="chunked"))
    assert model._fused_ce_impl == "chunked"
    with pytest.raises(ValueError, match="fused_ce_impl"):
        apply_fused_ce(model, "cuda")
