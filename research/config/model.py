"""Schema of the `model` group: the base model, loaded from a folder or built from this config."""

from dataclasses import dataclass

from research.errors import check
from research.model.families import FAMILIES, WINDOWED  # light: names only

DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class ModelConfig:
    name: str = "tiny"
    family: str = "llama"
    """What a model built from this config is: a name in research.model.families.FAMILIES (llama, mistral, qwen2),
    the transformers model_type. A folder at `path` is whatever its config.json says (docs/models.md)."""
    path: str | None = None
    """An HF causal-LM folder of a known family (safetensors). When null, a model of `family` is built from the
    fields below (random weights)."""
    vocab_size: int = 32000
    hidden_size: int = 64
    intermediate_size: int = 172
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    max_position_embeddings: int = 4096
    rms_norm_eps: float = 1.0e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    sliding_window: int | None = None
    """mistral only: attend to at most this many previous tokens (null: full causal attention)."""
    initializer_range: float = 0.02
    dtype: str = "float32"
    """Weights are saved in this dtype."""
    fused_ce: bool = False
    """Training forward returns the loss from kernels' fused linear cross-entropy (no full logits)."""
    fused_ce_impl: str = "auto"
    """auto (Triton on GPU, chunked PyTorch elsewhere) | triton | chunked."""
    seed: int = 0

    def __post_init__(self):
        check(self.family in FAMILIES, "model.family", self.family, f"unknown family; known: {', '.join(FAMILIES)}")
        check(self.sliding_window is None or self.family in WINDOWED, "model.sliding_window", self.sliding_window,
              f"only the {', '.join(WINDOWED)} family has a sliding window (model.family={self.family})")
        check(self.sliding_window is None or self.sliding_window > 0, "model.sliding_window", self.sliding_window,
              "must be positive (or null)")
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                    "num_attention_heads", "num_key_value_heads", "max_position_embeddings"):
            value = getattr(self, key)
            check(value > 0, f"model.{key}", value, "must be positive")
        check(self.hidden_size % self.num_attention_heads == 0, "model.hidden_size", self.hidden_size,
              f"must be divisible by model.num_attention_heads={self.num_attention_heads}")
        check(self.num_attention_heads % self.num_key_value_heads == 0, "model.num_key_value_heads",
              self.num_key_value_heads, f"must divide model.num_attention_heads={self.num_attention_heads}")
        check(self.dtype in DTYPES, "model.dtype", self.dtype, f"must be one of {DTYPES}")
        check(self.fused_ce_impl in ("auto", "triton", "chunked"), "model.fused_ce_impl", self.fused_ce_impl,
              "must be one of ('auto', 'triton', 'chunked')")
