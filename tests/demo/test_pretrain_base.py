"""The demo base's pre-training loss (fused linear cross-entropy) against transformers' own loss, and the demo
corpus keeping the held-out English passages out of en_wiki."""

import json

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from research.data.demo_corpus import _wiki_passages, build_demo_corpus
from research.demo.pretrain_base import pack_stream, step_loss


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
