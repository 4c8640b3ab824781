"""research.train.token_loss: the per-document mask and the per-token losses, the all-ignored batch,
the fused loss against the plain one."""



import torch
from train_helpers import VOCAB, tiny_model

from research.train import loader as D
from research.train.token_loss import forward_loss, token_losses


def _model(tmp_path):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(tiny_model(tmp_path / "m"), attn_implementation="eager")


def test_doc_mask_packed_equals_separate(tmp_path):
    model = _model(tmp_path).eval()
    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(1, VOCAB, (7,), generator=g).tolist(), torch.randint(1, VOCAB, (5,), generator=g).tolist()
    L = 16
    row = {"input_ids": a + b + [0] * (L - 12), "labels": a + b + [-100] * (L - 12), "doc_lens": [7, 5],
           "doc_categories": ["zh", "en"], "bucket": 0}
    batch = D.Collator(["en", "zh"], doc_mask=True, mask_dtype=torch.float32)([row])
    with torch.no_grad():
        _, packed, count = forward_loss(model, batch, fused=False)
        separate = []
        for doc in (a, b):
            ids = torch.tensor([doc])
            separate.append(token_losses(model(input_ids=ids).logits, ids)[0, :-1])
    expected = torch.cat([separate[0], separate[1]])
    got = torch.cat([packed[0, :6], packed[0, 7:11]])
    assert count == 10
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert packed[0, 6] == 0  # the last token of doc a does not predict doc b's first token
    # Without the mask, doc b attends to doc a and its losses change.
    plain = D.Collator(["en", "zh"], doc_mask=False, mask_dtype=torch.float32)([row])
    with torch.no_grad():
        _, unmasked, _ = forward_loss(model, plain, fused=False)
    assert not torch.allclose(unmasked[0, 7:11], separate[1])


def test_all_ignored_labels_give_zero_loss_and_grads(tmp_path):
    model = _model(tmp_path)
    row = {"input_ids": list(range(1, 17)), "labels": [-100] * 16, "doc_lens": [16], "doc_categories": ["zh"],
           "bucket": 0}
    batch = D.Collator(["zh"], doc_mask=True, mask_dtype=torch.float32)([row])
    loss, _, count = forward_loss(model, batch, fused=False)
    loss.backward()
    assert count == 0 and loss.item() == 0.0 and not torch.isnan(loss)
    assert all(p.grad is not None and torch.count_nonzero(p.grad) == 0 for p in model.parameters())


def test_fused_loss_matches_plain(tmp_path):
    from research.train.token_loss import enable_fused_ce

    model = _model(tmp_path)
    row = {"input_ids": list(range(1, 33)), "labels": list(range(1, 29)) + [-100] * 4, "doc_lens": [20, 8],
           "doc_categories": ["zh", "zh"], "bucket": 0}
    batch = D.Collator(["zh"], doc_mask=True, mask_dtype=torch.float32)([row])
    plain, _, _ = forward_loss(model, batch, fused=False)
    assert enable_fused_ce(model, "chunked") is True
    fused, per_token, _ = forward_loss(model, batch, fused=True)
    assert per_token is None
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)
