"""The root schema every app composes: one field per config group, plus where artifacts live."""

from dataclasses import dataclass, field

from research.config.buckets import BucketsConfig
from research.config.data import DataConfig
from research.config.eval import EvalConfig
from research.config.init import InitConfig
from research.config.logger import LoggerConfig
from research.config.model import ModelConfig
from research.config.pipeline import PipelineConfig
from research.config.plugin import PluginConfig
from research.config.schedule import ScheduleConfig
from research.config.tokenizer import TokenizerConfig
from research.config.train import TrainConfig
from research.errors import check


@dataclass
class PathsConfig:
    """Where each stage writes, under one run root. A stage reads only the artifacts of the stages before it."""

    inputs: str = "${run_root}/inputs"
    tokenizer: str = "${run_root}/tokenizer"
    model: str = "${run_root}/model"
    data: str = "${run_root}/data"
    train: str = "${run_root}/train"
    eval: str = "${run_root}/eval"


BASE_TOKENIZERS = ("sentencepiece", "tekken")


@dataclass
class DemoInputsConfig:
    """`python -m research.demo_inputs`: how the demo's inputs are cut from the packaged data."""

    base_tokenizer: str = "sentencepiece"
    """The base tokenizer written to base_tokenizer/: sentencepiece (mistral-common's 32,000-piece LLaMA-format
    SentencePiece BPE, the stand-in for LLaMA-2) | tekken (mistral-common's Tekken, Mistral-NeMo's 131,072-token
    byte-level BPE, converted from tiktoken format to tokenizer.json; the stand-in for Llama-3-class bases)."""

    heldout_fraction: float = 0.1
    """The last fraction of People's Daily paragraphs, kept out of tokenizer training (held-out eval text)."""
    en_passages: int = 2000
    """English Wikipedia passages written as held-out English text (the next ones are pre-training text)."""
    pretrain_steps: int = 200
    """Steps of brief pre-training for the base model (0 = leave its weights random)."""
    pretrain_en_passages: int = 6000
    """English passages the base model is pre-trained on."""
    pretrain_zh_share: float = 0.02
    """Share of Chinese tokens in the base model's pre-training (LLaMA-2 saw about 0.13 %)."""
    pretrain_seq_len: int = 128
    """Tokens per pre-training sequence."""
    pretrain_batch_size: int = 8
    """Sequences per pre-training step."""
    pretrain_lr: float = 3.0e-3
    """Peak AdamW learning rate of the pre-training (5 % warm-up, then cosine decay to `pretrain_final_lr`)."""
    pretrain_final_lr: float = 0.1
    """The learning rate the cosine ends at, as a fraction of `pretrain_lr` (0 = decay to zero)."""
    pretrain_long_share: float = 0.0
    """Share of the last pre-training steps whose rows are 2 x `pretrain_seq_len` tokens, half as many per step
    (the same tokens): the base then also learns the distances of the 512-token windows it is scored on."""
    heldout_eval_chars: int = 20000
    """Characters of each held-out text (English, Chinese) the pre-trained base is scored on (summary.json's
    base_model_heldout: bits per byte); 0 skips the scoring."""

    def __post_init__(self):
        check(self.base_tokenizer in BASE_TOKENIZERS, "demo.base_tokenizer", self.base_tokenizer,
              f"must be one of {BASE_TOKENIZERS}")
        check(0.0 < self.heldout_fraction < 1.0, "demo.heldout_fraction", self.heldout_fraction, "must be in (0, 1)")
        check(self.en_passages > 0, "demo.en_passages", self.en_passages, "must be positive")
        check(self.pretrain_steps >= 0, "demo.pretrain_steps", self.pretrain_steps, "must be >= 0")
        check(self.pretrain_en_passages > 0, "demo.pretrain_en_passages", self.pretrain_en_passages, "must be positive")
        check(0.0 <= self.pretrain_zh_share < 1.0, "demo.pretrain_zh_share", self.pretrain_zh_share, "must be in [0, 1)")
        for key in ("pretrain_seq_len", "pretrain_batch_size"):
            check(getattr(self, key) > 0, f"demo.{key}", getattr(self, key), "must be positive")
        check(self.pretrain_lr > 0, "demo.pretrain_lr", self.pretrain_lr, "must be positive")
        check(0.0 <= self.pretrain_final_lr <= 1.0, "demo.pretrain_final_lr", self.pretrain_final_lr,
              "must be in [0, 1] (a fraction of demo.pretrain_lr)")
        check(0.0 <= self.pretrain_long_share < 1.0, "demo.pretrain_long_share", self.pretrain_long_share,
              "must be in [0, 1)")
        check(self.pretrain_long_share == 0 or self.pretrain_batch_size % 2 == 0, "demo.pretrain_long_share",
              self.pretrain_long_share, f"needs an even demo.pretrain_batch_size (got {self.pretrain_batch_size})")
        check(self.heldout_eval_chars >= 0, "demo.heldout_eval_chars", self.heldout_eval_chars, "must be >= 0")


@dataclass
class GraftConfig:
    run_root: str = "outputs/default"
    """Every stage's outputs go under this folder (see `paths`)."""
    out_dir: str = "${run_root}"
    """Where the running app writes; each app's primary config points it at its entry in `paths`."""
    seed: int = 1234
    overwrite: bool = True
    """Replace an existing out_dir (atomically) instead of failing."""
    paths: PathsConfig = field(default_factory=PathsConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    init: InitConfig = field(default_factory=InitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    buckets: BucketsConfig = field(default_factory=BucketsConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    plugin: PluginConfig = field(default_factory=PluginConfig)
    """Typed, once composed, by the chosen plugin's own dataclass (research.config.plugin.PLUGINS)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    demo: DemoInputsConfig = field(default_factory=DemoInputsConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
