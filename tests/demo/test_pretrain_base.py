"""The demo base's pre-training loss (fused linear cross-entropy) against transformers' own loss, and the demo
corpus keeping the held-out English passages out of en_wiki."""

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from research.data.demo_corpus import _wiki_passages, build_demo_corpus
from research.demo.pretrain_base import batch_rows, lr_factor, pack_stream, permutation, step_loss


def _model(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=4))


def test_step_loss_equals_transformers_loss_and_gradients():
    docs = [torch.randint(3, 300, (n,), generator=torch.Generator().manual_seed(n)).tolist() for n in (40, 70, 25)]
    batch = pack_stream(docs, seq_len=16, eos=2)
    assert batch.shape == (8, 17) and batch[:, 1:].eq(2).any()
    a, b = _model(), _model()
    fused = step_loss(a, batch)
    # transformers shifts labels itself: position t predicts batch[:, t + 1], the same targets.
    ref = b(input_ids=batch, labels=batch).loss
    torch.testing.assert_close(fused, ref, rtol=1e-5, atol=1e-6)
    fused.backward()
    ref.backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_demo_corpus_leaves_out_heldout_passages(tmp_path):
    passages = [p for _, p in _wiki_passages()]
    heldout = frozenset(p.strip() for p in passages[:3000])
    out = build_demo_corpus(tmp_path, seed=3, num_reviews=20, num_wiki=len(passages), num_news=30,
                            heldout_passages=heldout)
    assert out["en_wiki_heldout_excluded"] == len(heldout)
    kept = set()
    for line in open(out["files"]["en_wiki"], "rb"):  # the injected noise has broken lines: skip them
        try:
            target = json.loads(line)["target"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(target, str):
            kept.add(target.strip())
    assert not kept & heldout
    # every passage not held out is still there (noise injection adds rows; it never removes clean ones)
    assert set(p.strip() for p in passages[3000:]) <= kept


@pytest.mark.parametrize("final_lr", [0.0, 0.1, 1.0])
def test_lr_factor_warms_up_then_ends_at_final_lr(final_lr):
    steps = 200
    f = [lr_factor(s, steps, final_lr) for s in range(steps + 1)]
    # 5 % warm-up: 10 linear steps (the cosine has barely started), then a peak of 1
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0, abs=0.01)
    assert f[steps] == pytest.approx(final_lr)
    assert all(a >= b - 1e-12 for a, b in zip(f[9:], f[10:], strict=False))  # never rises after warm-up
    # the midpoint of the cosine is halfway between peak and floor
    assert f[100] == pytest.approx((1 + final_lr) / 2)


def test_batch_rows_ends_on_long_rows_with_the_same_tokens_per_step():
    docs = [list(range(3, 3 + n)) for n in (50, 90, 130, 70) * 20]
    data, long_data = pack_stream(docs, 16, eos=2), pack_stream(docs, 32, eos=2)
    steps, long_steps, batch = 40, 8, 4
    order, long_order = permutation(len(data), 5), permutation(len(long_data), 5)
    seen = []
    for step in range(steps):
        rows = batch_rows(data, order, long_data, long_order, step=step, steps=steps, long_steps=long_steps,
                          batch_size=batch)
        if step < steps - long_steps:
            assert rows.shape == (4, 17)
        else:
            assert rows.shape == (2, 33)
            seen += [tuple(r.tolist()) for r in rows]
    # the long stream walks a permutation: no long row repeats before all have been seen
    assert len(set(seen)) == len(seen) == 2 * long_steps <= len(long_data)
    # without long rows, every step is batch rows of the short stream
    assert batch_rows(data, order, None, None, step=steps - 1, steps=steps, long_steps=long_steps,
                      batch_size=batch).shape == (4, 17)


def test_long_share_needs_an_even_batch():
    from research.config import ConfigError
    from research.config.root import DemoInputsConfig

    with pytest.raises(ConfigError, match=r"^demo\.pretrain_long_share.*even demo\.pretrain_batch_size \(got 7\)"):
        DemoInputsConfig(pretrain_long_share=0.2, pretrain_batch_size=7)
