"""The model families Graft builds, loads and trains: the one list of their names (`FAMILIES`).

A family's name is its transformers `model_type` (the `model_type` of an HF folder's config.json), so a model is
built with `AutoConfig.for_model(name, ...)` + `AutoModelForCausalLM.from_config` and loaded with the Auto classes
(safetensors only, never remote code). Each registered function maps the `model` group (research/config/model.py)
to the config fields only that family has; the fields every family shares are built in research/model/build.py.

| family | causal LM class | what differs from llama |
|---|---|---|
| llama  | LlamaForCausalLM   | (the reference) |
| mistral | MistralForCausalLM | an optional sliding attention window (`model.sliding_window`) |
| qwen2  | Qwen2ForCausalLM   | bias on q/k/v (built in); small sizes tie input and output embeddings |

Adding a family: one function here, a tiny `conf/model/tiny_<name>.yaml`, its window rule in `attention_window`
below, its refusals under hybrid in research/train/plugins.py (`check_architecture`) and any policy fix in
research/train/shard_policies.py; docs/models.md says what it was tested under. This module imports nothing heavy
(configs import it when composing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from research.errors import GraftError
from research.registry import Registry

if TYPE_CHECKING:
    from research.config.model import ModelConfig

FAMILIES: Registry = Registry("model family")
"""family name (= transformers model_type) -> its own config fields, in registration order."""
register = FAMILIES.register
WINDOWED = ("mistral",)
"""The families whose `model.sliding_window` means something (the others build without a window)."""


@register("llama")
def llama(cfg: ModelConfig) -> dict:
    """LLaMA-2 / LLaMA-3: no bias, no window; GQA when num_key_value_heads < num_attention_heads."""
    return {"attention_bias": False, "mlp_bias": False}


@register("mistral")
def mistral(cfg: ModelConfig) -> dict:
    """Mistral: LLaMA's layout with an optional sliding attention window (None: full causal attention)."""
    return {"sliding_window": cfg.sliding_window}


@register("qwen2")
def qwen2(cfg: ModelConfig) -> dict:
    """Qwen2 / Qwen2.5: bias on q/k/v (always, in the modeling code); built without a sliding window."""
    return {"use_sliding_window": False, "sliding_window": None, "max_window_layers": cfg.num_hidden_layers}


def family_of(config, where: str) -> str:
    """The family of a transformers config (its model_type), or a one-line GraftError naming `where` (the
    folder's config.json) and the architecture."""
    model_type = getattr(config, "model_type", None)
    if model_type in FAMILIES:
        return model_type
    raise GraftError(f"{where}: architecture {architecture(config)} (model_type {model_type!r}) is not a family "
                     f"Graft handles; known: {', '.join(FAMILIES)} (docs/models.md)")


def architecture(config) -> str:
    """The causal-LM class name config.json names (its first `architectures` entry), else its model_type."""
    names = getattr(config, "architectures", None) or []
    return str(names[0]) if names else f"<{getattr(config, 'model_type', 'unknown')}>"


def attention_window(config, max_length: int, where: str) -> int | None:
    """The sliding attention window the model applies within `max_length` tokens (None: full causal attention).

    A window the model applies must also shape the per-document mask (transformers uses a 4-D mask as given, and
    so drops the window), so the trainer folds it in (research/train/loader.doc_causal_mask). Qwen2's window is
    refused: transformers 4.51.3 applies it to every layer under eager/SDPA attention (even with
    use_sliding_window=false) and to layers >= max_window_layers only under flash attention.
    """
    window = getattr(config, "sliding_window", None)
    if window is None or window >= max_length:
        return None
    if config.model_type == "mistral":
        return int(window)
    raise GraftError(f"{where}: sliding_window={window} is shorter than the data's max_length={max_length}; "
                     f"Graft trains {config.model_type} with full causal attention only (transformers applies its "
                     "window differently per attention implementation)")
