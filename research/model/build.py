"""Build a LlamaForCausalLM from the `model` config group, or load one from an HF folder."""

from pathlib import Path

import torch

from research.config.model import ModelConfig
from research.errors import GraftError
from research.model.weights import check_weights

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def build_model(cfg: ModelConfig):
    """A LlamaForCausalLM with random weights drawn from `cfg.seed`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, max_position_embeddings=cfg.max_position_embeddings,
        rms_norm_eps=cfg.rms_norm_eps, rope_theta=cfg.rope_theta, tie_word_embeddings=cfg.tie_word_embeddings,
        initializer_range=cfg.initializer_range, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config)


def load_model(path: str, dtype: str = "float32"):
    """An HF causal LM folder (safetensors, checked before loading: research/model/weights.py); never unpickles."""
    from transformers import AutoModelForCausalLM

    p = Path(path)
    if not (p / "config.json").is_file():
        raise GraftError(f"model.path={path!r}: not an HF model folder (no config.json)")
    if not any(p.glob("*.safetensors")):
        raise GraftError(f"model.path={path!r}: no .safetensors weights (pickled checkpoints are not loaded)")
    check_weights(p, "model.path")
    return AutoModelForCausalLM.from_pretrained(str(p), torch_dtype=DTYPES[dtype], use_safetensors=True)


def base_model(cfg: ModelConfig):
    return load_model(cfg.path, cfg.dtype) if cfg.path else build_model(cfg)
