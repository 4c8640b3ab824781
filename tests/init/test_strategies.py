"""Embedding init: base rows bit-identical, base logits unchanged, each strategy computes what it says."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from research.config.init import InitConfig
from research.config.model import ModelConfig
from research.init.resize import resize_and_init
from research.init.splits import base_splits
from research.init.strategies import STRATEGIES
from research.model.build import build_model


@pytest.fixture(scope="module")
def splits(small_tokenizer):
    proto, base = small_tokenizer["proto"], small_tokenizer["base"]
    return base_splits(base.SerializeToString(), [p.piece for p in proto.pieces[32000:]])


def tiny(tied=False, seed=0):
    return build_model(ModelConfig(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_key_value_heads=2,
                                   tie_word_embeddings=tied, seed=seed))


def test_splits_leave_out_prefix_and_bytes(small_tokenizer, splits):
    base_tok = AutoTokenizer.from_pretrained(str(small_tokenizer["dir"]), use_fast=True)
    prefix = 28705  # "▁" in the LLaMA / Mistral vocabulary
    assert base_tok.convert_ids_to_tokens(prefix) == "▁"
    byte_ids = set(range(3, 259))
    kinds = {"prefix_dropped": 0, "bytes_dropped": 0, "all_kept": 0}
    for s in splits:
        others = [i for i in s.ids if i not in byte_ids and i != prefix]
        if others:
            assert s.clean_ids == others
            kinds["prefix_dropped"] += prefix in s.ids
            kinds["bytes_dropped"] += bool(byte_ids & set(s.ids))
        else:  # nothing but the prefix and bytes (a character the base lacks): keep them all
            assert s.clean_ids == s.ids
            kinds["all_kept"] += 1
    assert all(kinds.values()), kinds


@pytest.mark.parametrize("strategy", [s for s, fn in STRATEGIES.items() if not getattr(fn, "needs", ())])
def test_base_rows_identical_and_base_logits_unchanged(strategy, splits):
    base = tiny()
    model = tiny()
    stats = resize_and_init(model, 32000 + len(splits), splits, InitConfig(strategy=strategy))
    assert stats["new_size"] == 33500
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert emb.shape[0] == head.shape[0] == 33500
    assert torch.equal(emb[:32000], base.get_input_embeddings().weight)
    assert torch.equal(head[:32000], base.get_output_embeddings().weight)
    assert torch.isfinite(emb).all() and torch.isfinite(head).all()
    ids = torch.randint(3, 32000, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = base(ids).logits
        out = model(ids).logits
    assert out.shape[-1] == 33500
    torch.testing.assert_close(out[..., :32000], ref, rtol=0, atol=1e-6)
    # the strategies that read text: tests/init/test_corpus_strategies.py, test_every_strategy_initialises_with_a_corpus


def test_subword_mean_equals_independent_mean(splits, small_tokenizer):
    model = tiny()
    base_emb = model.get_input_embeddings().weight.detach().clone()
    base_head = model.get_output_embeddings().weight.detach().clone()
    resize_and_init(model, 33500, splits, InitConfig(strategy="subword_mean"))
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    # Independent: re-split with the HF base tokenizer and average with plain torch.
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=small_tokenizer["base"].SerializeToString())
    for k in range(0, len(splits), 97):
        piece = splits[k].piece
        ids = sp.encode(piece.replace("▁", " "))
        keep = [i for i in ids if not (3 <= i <= 258) and i != 28705] or ids
        torch.testing.assert_close(emb[32000 + k], base_emb[keep].mean(0), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(head[32000 + k], base_head[keep].mean(0), rtol=1e-6, atol=1e-7)


def test_reference_mean_includes_everything(splits):
    model = tiny()
    base_emb = model.get_input_embeddings().weight.detach().clone()
    resize_and_init(model, 33500, splits, InitConfig(strategy="subword_mean_ref"))
    emb = model.get_input_embeddings().weight
    k = next(i for i, s in enumerate(splits) if s.ids != s.clean_ids)
    torch.testing.assert_close(emb[32000 + k], base_emb[splits[k].ids].mean(0), rtol=1e-6, atol=1e-7)


def test_simple_strategies(splits):
    for strategy in ("zero", "mean_all", "random", "mvn"):
        model = tiny()
        base_emb = model.get_input_embeddings().weight.detach().clone()
        resize_and_init(model, 33500, splits, InitConfig(strategy=strategy, seed=3))
        new = model.get_input_embeddings().weight[32000:].detach()
        if strategy == "zero":
            assert torch.count_nonzero(new) == 0
        elif strategy == "mean_all":
            torch.testing.assert_close(new, base_emb.double().mean(0).float().expand_as(new))
        elif strategy == "random":
            assert abs(float(new.std()) / float(base_emb.std()) - 1.0) < 0.1
            assert abs(float(new.mean())) < 0.01
        else:  # mvn: tiny covariance around the base mean
            torch.testing.assert_close(new.mean(0), base_emb.mean(0), rtol=0, atol=1e-3)
            assert len({tuple(r.tolist()) for r in new[:50]}) == 50


def test_init_is_deterministic(splits):
    a, b = tiny(), tiny()
    resize_and_init(a, 33500, splits, InitConfig(strategy="mvn", seed=7))
    resize_and_init(b, 33500, splits, InitConfig(strategy="mvn", seed=7))
    assert torch.equal(a.get_input_embeddings().weight, b.get_input_embeddings().weight)


def test_tied_embeddings(splits):
    model = tiny(tied=True)
    base_emb = model.get_input_embeddings().weight.detach().clone()
    stats = resize_and_init(model, 33500, splits, InitConfig(strategy="subword_mean"))
    assert stats["tied"] and "lm_head" not in stats
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert torch.equal(model.get_input_embeddings().weight[:32000], base_emb)


def test_saved_model_loads_with_auto_classes(splits, small_tokenizer, tmp_path):
    model = tiny()
    resize_and_init(model, 33500, splits, InitConfig())
    model.save_pretrained(str(tmp_path), safe_serialization=True)
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path), use_safetensors=True)
    assert loaded.config.vocab_size == 33500
    assert torch.equal(loaded.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_subword_mean_in_uses_mean_for_output_rows(splits):
    model = tiny()
    base_emb = model.get_input_embeddings().weight.detach().clone()
    base_head = model.get_output_embeddings().weight.detach().clone()
    resize_and_init(model, 33500, splits, InitConfig(strategy="subword_mean_in"))
    emb, head = model.get_input_embeddings().weight[32000:], model.get_output_embeddings().weight[32000:]
    k = 5
    torch.testing.assert_close(emb[k], base_emb[splits[k].clean_ids].mean(0), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(head, base_head.double().mean(0).float().expand_as(head))
