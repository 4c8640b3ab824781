"""Schema of the `tokenizer` group: how the base vocabulary is expanded."""

from dataclasses import dataclass, field

from research.errors import ConfigError, check
from research.tokenizer.sources import SOURCES  # light: SentencePiece is imported when a source runs

UNREACHABLE_POLICIES = ("add_intermediates", "skip", "keep")
SCRIPTS = ("han", "any")


@dataclass
class SourceConfig:
    """One source of candidate pieces. Sources are consumed in order until the target size is reached."""

    kind: str = "train_sp"
    """A kind in research.tokenizer.sources.SOURCES: train_sp (SentencePiece bases) | train_bpe (byte-level bases) |
    wordlist | pieces_jsonl (both)."""
    paths: list[str] = field(default_factory=list)
    """train_sp, train_bpe: training text (plain text or jsonl); wordlist: `word freq [pos]` files; pieces_jsonl:
    {"piece": ...} lines."""
    vocab_size: int = 40000
    """train_sp: vocabulary size of the candidate SentencePiece model; train_bpe: the most new tokens (merges) it
    learns."""
    max_sentences: int = 0
    """train_sp: sample at most this many training lines; train_bpe: read only the first this many (0 = all)."""
    character_coverage: float = 0.9995
    """train_sp only: SentencePiece's character_coverage."""
    jsonl_field: str = "text"
    """train_sp, train_bpe: field read from jsonl training files."""
    min_pair_count: int = 2
    """train_bpe only: stop learning when the most frequent allowed pair occurs fewer times than this in the text."""
    min_freq: int = 1
    """wordlist only: skip words rarer than this."""
    max_pieces: int = 0
    """Take at most this many pieces from this source (0 = as many as needed)."""

    def __post_init__(self):
        check(self.kind in SOURCES, "tokenizer.sources[].kind", self.kind,
              f"unknown source kind; known: {', '.join(SOURCES)}")
        check(self.vocab_size > 0, "tokenizer.sources[].vocab_size", self.vocab_size, "must be positive")
        check(self.max_sentences >= 0, "tokenizer.sources[].max_sentences", self.max_sentences, "must be >= 0")
        check(0.9 <= self.character_coverage <= 1.0, "tokenizer.sources[].character_coverage",
              self.character_coverage, "must be in [0.9, 1.0]")
        check(self.min_freq >= 0, "tokenizer.sources[].min_freq", self.min_freq, "must be >= 0")
        check(self.max_pieces >= 0, "tokenizer.sources[].max_pieces", self.max_pieces, "must be >= 0")
        check(self.min_pair_count >= 1, "tokenizer.sources[].min_pair_count", self.min_pair_count, "must be >= 1")


@dataclass
class TokenizerConfig:
    """Vocabulary expansion (`python -m research.expand_vocab`)."""

    name: str = "train_sp"
    base_path: str = "${paths.inputs}/base_tokenizer/tokenizer.model"
    """The base: a SentencePiece BPE `.model` file or an HF folder holding `tokenizer.model` (LLaMA-2 / Mistral);
    an HF folder holding `tokenizer.json` and no `tokenizer.model`, a byte-level BPE (Llama-3, Qwen2, GPT-2); or a
    tiktoken-format `.json` file (mistral-common's Tekken). research/tokenizer/bytelevel.py: `base_format`."""
    target_size: int = 69104
    """Exact size of the expanded vocabulary (the reference's 69,104)."""
    pad_to_multiple_of: int = 0
    """Round the target up to a multiple of this (e.g. 64 x tensor-parallel size); 0 = off."""
    sources: list[SourceConfig] = field(default_factory=lambda: [SourceConfig()])
    script: str = "han"
    """Keep only candidates written in this script (han: CJK ideographs and CJK punctuation, with an optional
    leading '▁'); `any` keeps everything. Filtering keeps English and numbers encoding to the base's ids. On a
    byte-level base the rule applies to the bytes of each new merge (research/tokenizer/script.py:
    `bytes_in_script`), so text without a Han character encodes exactly as before."""
    unreachable: str = "add_intermediates"
    """What to do with a candidate BPE cannot produce from its parts: add the missing intermediate pieces,
    skip it, or keep it anyway (wasting a slot)."""
    max_piece_chars: int = 16
    """Reject candidates longer than this many characters."""
    eval_texts: dict[str, str] = field(default_factory=dict)
    """Held-out text per language (language -> path) for the compression report."""
    eval_max_chars: int = 2_000_000
    """Read at most this many characters of each eval text."""
    consistency_lines: int = 500
    """SentencePiece bases: lines of eval text on which slow, fast and raw SentencePiece encodings are compared after
    saving (byte-level bases compare AutoTokenizer with `tokenizers` on every eval line)."""
    num_threads: int = 2
    seed: int = 0

    def __post_init__(self):
        check(bool(self.base_path), "tokenizer.base_path", self.base_path, "must name a .model file or a tokenizer folder")
        check(self.target_size > 0, "tokenizer.target_size", self.target_size, "must be positive")
        check(self.pad_to_multiple_of >= 0, "tokenizer.pad_to_multiple_of", self.pad_to_multiple_of, "must be >= 0")
        check(self.script in SCRIPTS, "tokenizer.script", self.script, f"must be one of {SCRIPTS}")
        check(self.unreachable in UNREACHABLE_POLICIES, "tokenizer.unreachable", self.unreachable,
              f"must be one of {UNREACHABLE_POLICIES}")
        check(self.max_piece_chars > 0, "tokenizer.max_piece_chars", self.max_piece_chars, "must be positive")
        check(self.consistency_lines >= 0, "tokenizer.consistency_lines", self.consistency_lines, "must be >= 0")
        check(self.num_threads > 0, "tokenizer.num_threads", self.num_threads, "must be positive")
        if not self.sources:
            raise ConfigError("tokenizer.sources", self.sources, "needs at least one source")

    @property
    def final_size(self) -> int:
        m = self.pad_to_multiple_of
        return self.target_size if m <= 1 else -(-self.target_size // m) * m

