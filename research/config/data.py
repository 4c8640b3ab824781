"""Schema of the `data` group: the data mix and the clean / dedup / score / tokenize / pack settings.

Used by `python -m research.prepare_data`. Every value is checked here, when the config is composed, so a bad
mix fails before any file is read.
"""

from dataclasses import dataclass, field

from research.data.score import SCORERS  # light: a scorer imports what it needs when it is built
from research.errors import ConfigError, check

FORMATS = ("jsonl_st", "jsonl_text", "text")
LANGS = ("zh", "en", "any")
NORMALIZATIONS = ("NFKC", "NFC", "none")
MINHASH_IMPLS = ("numpy", "datasketch")
SCORE_MODES = ("none", "threshold", "top_fraction")
TOKENIZE_BACKENDS = ("auto", "sentencepiece", "hf")
EXECUTORS = ("local", "slurm", "ray")


@dataclass
class InputConfig:
    """One input of the mix: a file (or a folder of files, read in name order) in one format and one category."""

    path: str = ""
    format: str = "jsonl_st"
    """jsonl_st: {"source", "target", "category"} lines (the reference's format; `category` in a record overrides
    the input's); jsonl_text: {"text"} lines; text: plain text, one document per blank-line-separated block."""
    category: str = "default"
    weight: float = 1.0
    """Repeat (weight > 1) or subsample (weight < 1) this category's documents; fractional weights are OK."""
    lang: str = "any"
    """Expected language (zh | en | any): text mostly in another script is rejected as wrong_language/mixed."""


@dataclass
class CleanConfig:
    normalization: str = "NFC"
    """Unicode normalisation of source and target: NFC (default) | NFKC | none. NFKC also folds full-width
    Chinese punctuation (，。：) and digits to ASCII, which the tokenizer's training text does not do."""
    min_chars: int = 8
    """Reject documents (source + target) shorter than this many characters after normalisation."""
    max_chars: int = 200_000
    max_line_bytes: int = 8_000_000
    """A raw line longer than this is rejected before it is decoded or parsed."""
    min_script_fraction: float = 0.6
    """Units in the input's expected script / all units (a Han character, or a word of an alphabetic script, is
    one unit: docs/cleaning.md); below this the record is wrong_language or mixed."""
    max_symbol_ratio: float = 0.25
    """Non-letter, non-digit, non-space, non-CJK-punctuation characters / all characters."""
    max_digit_ratio: float = 0.3
    """Digits of numeric lines (more digits than letters: table rows, number lists) / all characters; digits in
    prose lines do not count (1.0 turns the check off)."""
    max_dup_line_fraction: float = 0.3
    """Characters in lines that repeat an earlier line of the same document / all characters."""
    dup_ngram_size: int = 10
    max_dup_ngram_fraction: float = 0.3
    """Character n-grams (n = dup_ngram_size) that repeat an earlier one / all n-grams."""
    menu_min_separators: int = 4
    """A text with at least this many menu separators (|, >, », ·) between short items is a menu or footer
    (0 = off)."""
    menu_max_item_chars: float = 16.0
    """... when its characters per item are below this."""
    max_control_chars: int = 0
    """Control characters allowed (tab, newline and carriage return excepted)."""


@dataclass
class DedupConfig:
    exact: bool = True
    near: bool = True
    threshold: float = 0.8
    """Jaccard similarity of character shingles at which two documents are near duplicates."""
    shingle_size: int = 5
    """Characters per shingle (character shingles work for Chinese, which has no spaces)."""
    num_perm: int = 128
    impl: str = "numpy"
    """MinHash implementation: numpy (vectorised, the default: faster, see docs/apps/prepare_data.md) | datasketch."""
    seed: int = 1


@dataclass
class ScoreConfig:
    scorer: str = "heuristic"
    """A name in research.data.score.SCORERS."""
    signals: dict[str, float] = field(default_factory=lambda: {
        "length": 1.0, "char_diversity": 1.0, "ends_with_punct": 0.5, "script_purity": 1.0})
    """heuristic scorer: signal name -> weight; the score is the weighted mean of the signals (each in [0, 1])."""
    mode: str = "threshold"
    """none (keep all) | threshold (keep score >= threshold) | top_fraction (keep the best fraction per category)."""
    threshold: float = 0.3
    top_fraction: float = 0.9


@dataclass
class TokenizeConfig:
    backend: str = "auto"
    """auto (SentencePiece's C++ encoder when the folder's tokenizer.model gives the HF tokenizer's ids on a
    sample of the corpus, else the HF fast tokenizer) | sentencepiece (required: stop if it cannot be used) | hf."""
    batch_size: int = 1024
    """Documents per encode call (and per task sent to a worker process on the hf backend)."""
    add_bos: bool = True
    add_eos: bool = True


@dataclass
class PackConfig:
    shuffle: bool = True
    """Shuffle packs within each bucket (seeded by buckets.seed)."""
    carry_over: bool = True
    """Move the chunks of each bucket's least-filled pack (fewer than max_length tokens) into the next bucket, so
    only the last bucket ends with a partly empty pack; false keeps buckets exactly bin-aligned (more padding)."""
    window_packs: int = 256
    """Best fit packs each bucket's documents, in corpus order, in windows of about this many packs' tokens
    (memory is bounded by the window, not the bucket); the least-filled pack of a window moves on to the next
    window, so only a bucket's last window can end partly empty. Each window is one Arrow file of the bucket."""


@dataclass
class SlurmConfig:
    partition: str = ""
    """Slurm partition (required with data.engine.executor=slurm)."""
    time: str = "04:00:00"
    cpus_per_task: int = 1
    mem_per_cpu_gb: float = 2.0
    qos: str = ""
    sbatch_args: dict[str, str] = field(default_factory=dict)
    """Extra `#SBATCH --key=value` lines."""
    venv_path: str = ""
    """A script sourced before each job (for example a venv's bin/activate)."""


@dataclass
class RayConfig:
    address: str = ""
    """Ray cluster to join ("auto", or host:port); empty starts a local Ray instance."""
    cpus_per_task: int = 1
    mem_per_cpu_gb: float = 2.0


@dataclass
class EngineConfig:
    """How the sharded stages run: datatrove's executors (docs/apps/prepare_data.md#how-it-runs-shards-stages-executors)."""

    executor: str = "local"
    """local (worker processes on this machine) | slurm (one job array per stage) | ray (tasks on a Ray cluster)."""
    shard_mb: float = 4.0
    """Input bytes per shard: large jsonl files are cut at line starts into shards of about this size."""
    partitions: int = 16
    """Hash partitions of the exact-dedup step (tasks of that stage)."""
    keep_work: bool = False
    """Keep the work folder (per-shard intermediate files and the executors' logs) after a successful run."""
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    ray: RayConfig = field(default_factory=RayConfig)


@dataclass
class DataConfig:
    name: str = "demo"
    inputs: list[InputConfig] = field(default_factory=list)
    clean: CleanConfig = field(default_factory=CleanConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    pack: PackConfig = field(default_factory=PackConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    max_length: int = 4096
    """Tokens per pack; longer documents are split into chunks (never cut off)."""
    num_workers: int = 2
    """Tasks run at once: worker processes (local executor, 1 = in this process), Ray tasks, or Slurm array
    tasks. The outputs do not depend on it."""
    allow_empty: bool = False
    """A category left with no records after read, clean, dedup and score stops the run before any output is
    written (false, the default), or is only a warning in the log and the manifest's `warnings` (true). An empty
    input file is always only a warning."""

    @property
    def weights(self) -> dict[str, float]:
        """category -> mix weight."""
        return {i.category: i.weight for i in self.inputs}

    def __post_init__(self):
        for i, inp in enumerate(self.inputs):
            key = f"data.inputs[{i}]"
            check(bool(inp.path), f"{key}.path", inp.path, "must name a file or folder")
            check(inp.format in FORMATS, f"{key}.format", inp.format, f"must be one of {FORMATS}")
            check(bool(inp.category), f"{key}.category", inp.category, "must be a non-empty name")
            check(inp.weight >= 0, f"{key}.weight", inp.weight, "must be >= 0")
            check(inp.lang in LANGS, f"{key}.lang", inp.lang, f"must be one of {LANGS}")
        c = self.clean
        check(c.normalization in NORMALIZATIONS, "data.clean.normalization", c.normalization,
              f"must be one of {NORMALIZATIONS}")
        check(c.min_chars >= 0, "data.clean.min_chars", c.min_chars, "must be >= 0")
        check(c.max_chars >= c.min_chars, "data.clean.max_chars", c.max_chars, f"must be >= min_chars={c.min_chars}")
        check(c.max_line_bytes > 0, "data.clean.max_line_bytes", c.max_line_bytes, "must be positive")
        for key in ("min_script_fraction", "max_symbol_ratio", "max_digit_ratio", "max_dup_line_fraction",
                    "max_dup_ngram_fraction"):
            v = getattr(c, key)
            check(0.0 <= v <= 1.0, f"data.clean.{key}", v, "must be in [0, 1]")
        check(c.dup_ngram_size > 0, "data.clean.dup_ngram_size", c.dup_ngram_size, "must be positive")
        check(c.menu_min_separators >= 0, "data.clean.menu_min_separators", c.menu_min_separators, "must be >= 0")
        check(c.max_control_chars >= 0, "data.clean.max_control_chars", c.max_control_chars, "must be >= 0")
        d = self.dedup
        check(0.0 < d.threshold <= 1.0, "data.dedup.threshold", d.threshold, "must be in (0, 1]")
        check(d.shingle_size > 0, "data.dedup.shingle_size", d.shingle_size, "must be positive")
        check(d.num_perm >= 8, "data.dedup.num_perm", d.num_perm, "must be >= 8")
        check(d.impl in MINHASH_IMPLS, "data.dedup.impl", d.impl, f"must be one of {MINHASH_IMPLS}")
        s = self.score
        check(s.scorer in SCORERS, "data.score.scorer", s.scorer, f"unknown scorer; known: {', '.join(SCORERS)}")
        check(s.mode in SCORE_MODES, "data.score.mode", s.mode, f"must be one of {SCORE_MODES}")
        check(0.0 < s.top_fraction <= 1.0, "data.score.top_fraction", s.top_fraction, "must be in (0, 1]")
        for name, w in s.signals.items():
            check(w >= 0, f"data.score.signals.{name}", w, "must be >= 0")
        check(self.tokenize.backend in TOKENIZE_BACKENDS, "data.tokenize.backend", self.tokenize.backend,
              f"must be one of {TOKENIZE_BACKENDS}")
        check(self.tokenize.batch_size > 0, "data.tokenize.batch_size", self.tokenize.batch_size, "must be positive")
        check(self.pack.window_packs >= 1, "data.pack.window_packs", self.pack.window_packs, "must be >= 1")
        e = self.engine
        check(e.executor in EXECUTORS, "data.engine.executor", e.executor, f"must be one of {EXECUTORS}")
        check(e.shard_mb > 0, "data.engine.shard_mb", e.shard_mb, "must be positive")
        check(e.partitions >= 1, "data.engine.partitions", e.partitions, "must be >= 1")
        if e.executor == "slurm":
            check(bool(e.slurm.partition), "data.engine.slurm.partition", e.slurm.partition,
                  "must name a Slurm partition with data.engine.executor=slurm")
        for key, v in (("slurm.cpus_per_task", e.slurm.cpus_per_task), ("ray.cpus_per_task", e.ray.cpus_per_task)):
            check(v >= 1, f"data.engine.{key}", v, "must be >= 1")
        check(self.max_length >= 16, "data.max_length", self.max_length, "must be >= 16")
        check(self.num_workers > 0, "data.num_workers", self.num_workers, "must be positive")
        weights: dict[str, float] = {}
        for i, inp in enumerate(self.inputs):
            w = weights.setdefault(inp.category, inp.weight)
            check(w == inp.weight, f"data.inputs[{i}].weight", inp.weight,
                  f"inputs of category {inp.category!r} must share one weight (another has {w})")
        if len({(i.path, i.format) for i in self.inputs}) != len(self.inputs):
            raise ConfigError("data.inputs", [i.path for i in self.inputs], "lists the same input twice")
