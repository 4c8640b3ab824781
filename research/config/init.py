"""Schema of the `init` group: how the new embedding rows are initialised, and the step-0 diagnostics."""

from dataclasses import dataclass, field

from research.errors import check
from research.init.strategies import STRATEGIES  # light: the strategies import torch only when they run


@dataclass
class InitConfig:
    """Embedding initialisation (`python -m research.init_model`)."""

    strategy: str = "subword_mean"
    """A name in research.init.strategies.STRATEGIES; each has its file conf/init/<name>.yaml."""
    cov_scale: float = 1.0e-9
    """mvn only: the base rows' covariance is scaled by this before sampling (transformers' mean_resizing uses 1e-9)."""
    std_scale: float = 1.0
    """random only: new rows ~ N(0, (std_scale * std of the base rows)^2)."""
    seed: int = 0

    domain_text: str | None = None
    """Text in the new language or domain (one document per line, .txt; or .jsonl with a `text` field, or the
    `source` and `target` fields prepare_data reads). Read by the strategies that need a corpus (focus,
    token_distill, guarded); experiment=demo points it at demo_inputs' zh_news_train.txt."""
    base_text: str | None = None
    """Text in the base model's language, in the same formats (guarded calibrates on it; never held-out text).
    experiment=demo points it at demo_inputs' en_train.txt."""
    corpus_max_chars: int = 1_000_000
    """Characters read from each of domain_text and base_text."""

    focus_dim: int = 100
    """focus: dimensions of the auxiliary fastText embeddings trained on domain_text."""
    focus_epochs: int = 5
    """focus: fastText training epochs."""
    focus_min_count: int = 3
    """focus: a base token must occur this often in domain_text to be one of the tokens a new row is built from."""
    focus_temperature: float = 0.1
    """focus: similarities are divided by this before sparsemax (FOCUS's default)."""

    distill_steps: int = 60
    """token_distill: Adam steps over the contexts (the budget; must be positive)."""
    distill_contexts: int = 512
    """token_distill: contexts from domain_text, the most frequent new tokens first."""
    distill_contexts_per_token: int = 2
    """token_distill: contexts per new token (so about distill_contexts / this many tokens are fitted; the rest
    keep their subword mean)."""
    distill_context_tokens: int = 24
    """token_distill: tokens of context on each side of the new token."""
    distill_batch: int = 128
    """token_distill: contexts per step."""
    distill_lr: float = 0.05
    """token_distill: Adam's rate, in units of the base input rows' standard deviation."""

    guard_mass: float = 0.002
    """guarded: the mean probability the new tokens may take, at step 0, in base-language contexts."""
    guard_tokens: int = 8192
    """guarded: tokens of base_text and of domain_text whose hidden states calibrate the shift."""

    diagnostics: bool = True
    """Compute the step-0 diagnostics (research/init/diagnostics.py) into summary.json and W&B."""
    heldout_texts: dict[str, str] = field(default_factory=dict)
    """language -> held-out text file the diagnostics score (experiment=demo: the same files as eval.heldout_texts).
    Empty: the diagnostics have row norms and nearest tokens only."""
    diagnostics_chars: int = 20000
    """Characters of each heldout_texts language the diagnostics score."""
    diagnostics_base_language: str = "en"
    """The heldout_texts language that is the base model's own (KL and new-token mass are measured on it)."""
    diagnostics_sample: int = 8
    """New tokens (a seeded sample) whose nearest base tokens are listed."""

    def __post_init__(self):
        check(self.strategy in STRATEGIES, "init.strategy", self.strategy,
              f"unknown strategy; known: {', '.join(STRATEGIES)}")
        check(self.cov_scale > 0, "init.cov_scale", self.cov_scale, "must be positive")
        check(self.std_scale >= 0, "init.std_scale", self.std_scale, "must be >= 0")
        for key in ("corpus_max_chars", "focus_dim", "focus_epochs", "focus_min_count", "distill_steps",
                    "distill_contexts", "distill_contexts_per_token", "distill_context_tokens", "distill_batch",
                    "guard_tokens"):
            value = getattr(self, key)
            check(value > 0, f"init.{key}", value, "must be positive" + (
                " (the token distillation budget; a budget of 0 fits nothing: use init=subword_mean_in)"
                if key == "distill_steps" else ""))
        check(self.focus_temperature > 0, "init.focus_temperature", self.focus_temperature, "must be positive")
        check(self.distill_lr > 0, "init.distill_lr", self.distill_lr, "must be positive")
        check(0 < self.guard_mass < 1, "init.guard_mass", self.guard_mass, "must be in (0, 1)")
        check(self.diagnostics_chars > 0, "init.diagnostics_chars", self.diagnostics_chars, "must be positive")
        check(self.diagnostics_sample >= 0, "init.diagnostics_sample", self.diagnostics_sample, "must be >= 0")

    def missing_corpus(self) -> str | None:
        """The key of the text this config's strategy needs but was not given (None when it has what it needs)."""
        for key in getattr(STRATEGIES[self.strategy], "needs", ()):
            if not getattr(self, key):
                return f"init.{key}"
        return None
