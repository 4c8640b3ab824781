"""`research.evaluate` on a tied Qwen2 folder: it loads as its family and every method scores (a Mistral base is
evaluated by tests/test_pipeline_bytelevel.py)."""

import json

import pytest
import torch
import transformers
from test_evaluation import cli, quick

pytestmark = pytest.mark.slow


def family_folder(model_dir, tmp_path, family: str):
    """The Llama fixture's tokenizer beside a tiny model of `family` (qwen2: tied embeddings)."""
    out = tmp_path / family
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    tok.save_pretrained(out)
    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model(
        family, vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=family == "qwen2",
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(out, safe_serialization=True)
    return out


def test_evaluate_scores_a_tied_qwen2(tmp_path, model_dir):
    folder = family_folder(model_dir, tmp_path, "qwen2")
    r = cli(*quick(tmp_path, folder, "eval", "logger=none", "eval.methods=[first_token,loglik]"))
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["model_path"] == str(folder)
    mmlu = summary["datasets"]["mmlu"]
    assert mmlu["first_token"]["n"] == mmlu["loglik"]["n"] == 8
    assert 0 < summary["heldout"]["en"]["bits_per_byte"] < 50
