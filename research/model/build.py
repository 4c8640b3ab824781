"""Build a causal LM of a known family (research/model/families.py) from the `model` config group, or load one
from an HF folder (safetensors only, never remote code)."""

from pathlib import Path

import torch

from research.config.model import ModelConfig
from research.errors import GraftError
from research.model.families import FAMILIES, family_of
from research.model.weights import check_weights

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SPECIAL_IDS = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
"""LLaMA's SentencePiece ids, which Graft's tokenizers keep whatever the family."""


def model_config(cfg: ModelConfig):
    """The transformers config of `cfg.family` with the `model` group's shape (AutoConfig.for_model)."""
    from transformers import AutoConfig

    return AutoConfig.for_model(
        cfg.family, vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, max_position_embeddings=cfg.max_position_embeddings,
        rms_norm_eps=cfg.rms_norm_eps, rope_theta=cfg.rope_theta, tie_word_embeddings=cfg.tie_word_embeddings,
        initializer_range=cfg.initializer_range, **SPECIAL_IDS, **FAMILIES[cfg.family](cfg),
    )


def from_config(config):
    """A causal LM with random weights from a transformers config (the torch RNG as it stands), in float32."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)


def build_model(cfg: ModelConfig):
    """A causal LM of `cfg.family` with random weights drawn from `cfg.seed`."""
    config = model_config(cfg)
    torch.manual_seed(cfg.seed)
    return from_config(config)


def read_config(path: str | Path, key: str = "model.path"):
    """The folder's config.json as a transformers config (no remote code); its family is checked by the caller
    (families.family_of), so that a more specific refusal (a plugin's) may come first."""
    from transformers import AutoConfig

    p = Path(path)
    try:
        config = AutoConfig.from_pretrained(str(p), trust_remote_code=False)
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GraftError(f"{key}={str(path)!r}: config.json: not a readable model config ({first})") from None
    return config


def load_model(path: str, dtype: str = "float32", key: str = "model.path"):
    """An HF causal LM folder of a known family (safetensors, checked before loading: research/model/weights.py);
    never unpickles, never runs the folder's code."""
    from transformers import AutoModelForCausalLM

    p = Path(path)
    if not (p / "config.json").is_file():
        raise GraftError(f"{key}={path!r}: not an HF model folder (no config.json)")
    if not any(p.glob("*.safetensors")):
        raise GraftError(f"{key}={path!r}: no .safetensors weights (pickled checkpoints are not loaded)")
    check_weights(p, key)
    config = read_config(p, key)
    family_of(config, str(p / "config.json"))
    return AutoModelForCausalLM.from_pretrained(str(p), config=config, torch_dtype=DTYPES[dtype],
                                                use_safetensors=True, trust_remote_code=False)


def base_model(cfg: ModelConfig):
    return load_model(cfg.path, cfg.dtype) if cfg.path else build_model(cfg)
