"""research.model.families and research.model.build for every family (llama, mistral, qwen2): each conf/model file
builds its family, saves and reloads through the Auto classes (config, weights, GQA, Qwen2's bias and tying);
unknown families and misplaced options are one line; a tied Qwen2 resized by init_model reloads tied with its base
rows bit-identical; and per family, packed documents under the per-document mask (Mistral's sliding window folded
in) give each document's own per-token losses, with the plain and the fused loss."""

from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from research.cli import CONF_DIR
from research.config import to_object
from research.errors import ConfigError, GraftError
from research.model.build import build_model, load_model, model_config
from research.model.families import FAMILIES, attention_window
from research.train import loader as D
from research.train.token_loss import enable_fused_ce, forward_loss, token_losses
from tests.conftest import compose

CLASSES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}
TINY = [p.stem for p in sorted(Path(CONF_DIR, "model").glob("tiny*.yaml"))]


def small(family: str, **kw):
    """A ModelConfig of `family`, 64 pieces and 32 wide, GQA (4 query heads, 2 key/value heads)."""
    over = {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 64, **kw}
    return to_object(compose("init_model", [f"model.family={family}", *(f"model.{k}={v}" for k, v in over.items())]))


def public(config) -> dict:
    """A config's fields as config.json holds them (transformers' private bookkeeping left out)."""
    return {k: v for k, v in config.to_diff_dict().items() if not k.startswith("_")}


def test_registry_is_the_three_families():
    assert list(FAMILIES) == list(CLASSES)
    assert {"tiny", "tiny_mistral", "tiny_qwen2"} <= set(TINY)


@pytest.mark.parametrize("choice", TINY)
def test_conf_model_file_builds_saves_and_reloads(choice, tmp_path):
    cfg = to_object(compose("init_model", [f"model={choice}"])).model
    model = build_model(cfg)
    c = model.config
    assert type(model).__name__ == CLASSES[cfg.family] and c.model_type == cfg.family
    head_dim = c.hidden_size // c.num_attention_heads
    k_proj = model.model.layers[0].self_attn.k_proj
    assert k_proj.out_features == c.num_key_value_heads * head_dim  # GQA as configured
    if choice != "tiny":
        assert c.num_key_value_heads < c.num_attention_heads
    assert (k_proj.bias is not None) == (cfg.family == "qwen2")  # Qwen2's q/k/v bias is built in
    tied = model.lm_head.weight is model.model.embed_tokens.weight
    assert tied == cfg.tie_word_embeddings == (choice == "tiny_qwen2")
    assert getattr(c, "sliding_window", None) == cfg.sliding_window
    model.save_pretrained(tmp_path, safe_serialization=True)
    again = load_model(str(tmp_path))
    assert type(again).__name__ == CLASSES[cfg.family] and public(again.config) == public(c)
    assert (again.lm_head.weight is again.model.embed_tokens.weight) == tied
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_llama_build_is_the_one_it_replaced():
    """build_model through AutoConfig.for_model draws the weights LlamaForCausalLM(LlamaConfig(...)) drew."""
    from transformers import LlamaForCausalLM

    cfg = small("llama").model
    built = build_model(cfg)
    torch.manual_seed(cfg.seed)
    direct = LlamaForCausalLM(model_config(cfg))
    assert all(torch.equal(v, direct.state_dict()[k]) for k, v in built.state_dict().items())


@pytest.mark.parametrize("override,key,fragment", [
    ("model.family=phi3", "model.family", "known: llama, mistral, qwen2"),
    ("model.sliding_window=128", "model.sliding_window", "only the mistral family"),
])
def test_bad_family_options_are_one_line(override, key, fragment):
    with pytest.raises(ConfigError) as e:
        to_object(compose("init_model", [override]))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{key}=") and fragment in msg


def test_unknown_family_folder_is_refused_naming_config_and_architecture(tmp_path):
    config = AutoConfig.for_model("phi3", vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                  num_attention_heads=4, num_key_value_heads=2, pad_token_id=0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path, safe_serialization=True)
    with pytest.raises(GraftError) as e:
        load_model(str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "config.json") in msg and "Phi3ForCausalLM" in msg


def test_tied_qwen2_resized_reloads_tied_with_base_rows_bit_identical(tmp_path):
    from research.init.resize import resize_and_init
    from research.init.splits import Split

    cfg = small("qwen2", tie_word_embeddings="true")
    model = build_model(cfg.model)
    base = model.model.embed_tokens.weight.detach().clone()
    splits = [Split(f"p{i}", [3 + i, 5], [3 + i, 5]) for i in range(16)]
    stats = resize_and_init(model, 80, splits, cfg.init)
    assert stats["tied"] is True and "lm_head" not in stats  # one matrix, initialised once
    model.save_pretrained(tmp_path, safe_serialization=True)
    again = load_model(str(tmp_path))
    emb = again.model.embed_tokens.weight
    assert again.lm_head.weight is emb and emb.shape == (80, 32) and again.config.vocab_size == 80
    assert torch.equal(emb[:64], base)
    assert torch.equal(emb[64], (base[3] + base[5]) / 2)  # subword_mean of the split


def _packed_and_alone(model, window):
    """(per-token losses of two packed documents under the per-document mask, each document's own losses)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(1, 64, (13,), generator=g).tolist(), torch.randint(1, 64, (11,), generator=g).tolist()
    L = 28
    row = {"input_ids": a + b + [0] * (L - 24), "labels": a + b + [-100] * (L - 24), "doc_lens": [13, 11],
           "doc_categories": ["zh", "en"], "bucket": 0}
    batch = D.Collator(["en", "zh"], doc_mask=True, mask_dtype=torch.float32, window=window)([row])
    with torch.no_grad():
        _, packed, count = forward_loss(model, batch, fused=False)
        alone = [token_losses(model(input_ids=torch.tensor([d])).logits, torch.tensor([d]))[0, :-1] for d in (a, b)]
    assert count == 22
    return batch, torch.cat([packed[0, :12], packed[0, 13:23]]), torch.cat(alone)


@pytest.mark.parametrize("family", list(CLASSES))
def test_doc_mask_packed_equals_alone_per_family(family):
    """Per family: the document mask (Mistral: with its window of 4 folded in) gives each document's own losses,
    which the model computes alone with its own masking; the fused loss agrees with the plain one."""
    extra = {"sliding_window": 4} if family == "mistral" else {"tie_word_embeddings": "true"} if family == "qwen2" else {}
    cfg = small(family, **extra).model
    model = build_model(cfg).eval()
    window = attention_window(model.config, 28, "config.json")
    assert window == (4 if family == "mistral" else None)
    batch, got, want = _packed_and_alone(model, window)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    if family == "mistral":  # without the fold, transformers would drop the window from the 4-D mask
        _, unfolded, _ = _packed_and_alone(model, None)
        assert not torch.allclose(unfolded, want, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        plain, _, _ = forward_loss(model, batch, fused=False)
        enable_fused_ce(model, "chunked")
        fused, per_token, _ = forward_loss(model, batch, fused=True)
    assert per_token is None
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)


def test_qwen2_window_shorter_than_the_packs_is_refused():
    config = model_config(small("qwen2").model)
    config.sliding_window = 16
    with pytest.raises(GraftError) as e:
        attention_window(config, 32, "m/config.json")
    assert "m/config.json: sliding_window=16" in str(e.value) and "\n" not in str(e.value)
    config.sliding_window = 4096
    assert attention_window(config, 32, "m/config.json") is None


@pytest.mark.parametrize("new_size", [70, 90])
def test_new_tokens_take_the_padding_rows_of_a_padded_base_first(new_size):
    """A Qwen2-style base whose embedding has more rows (80) than its tokenizer has ids (64): the new ids (64 on)
    take the padding rows, and the matrix grows only past them; base rows bit-identical, strategies read base rows."""
    from research.config.init import InitConfig
    from research.init.resize import resize_and_init
    from research.init.splits import Split

    model = build_model(small("qwen2", tie_word_embeddings="true", vocab_size=80).model)
    before = model.model.embed_tokens.weight.detach().clone()
    splits = [Split(f"p{i}", [3], [3]) for i in range(new_size - 64)]
    stats = resize_and_init(model, new_size, splits, InitConfig(strategy="mean_all"), base_size=64)
    emb = model.model.embed_tokens.weight
    assert emb.shape[0] == max(80, new_size) == model.config.vocab_size
    taken = min(new_size, 80) - 64
    assert stats["model_rows"] == {"before": 80, "after": max(80, new_size), "padding_rows_taken": taken}
    assert torch.equal(emb[:64], before[:64])
    mean = before[:64].double().mean(0).to(emb.dtype)  # the base rows' mean: padding rows are not averaged in
    assert all(torch.equal(emb[i], mean) for i in range(64, new_size))
    if new_size < 80:
        assert torch.equal(emb[new_size:], before[new_size:])  # padding rows no token took stay as they were
