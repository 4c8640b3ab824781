"""Candidate new pieces, in priority order, from each kind of source in `conf/tokenizer/`.

`SOURCES` (kind -> function) is the only list of source kinds: the `tokenizer` schema validates
`tokenizer.sources[].kind` against it. Adding a kind is one function `(src, key, cfg, workdir) -> pieces`
registered with `@register("<kind>")`. The schema imports this module when a config is composed, so
SentencePiece is imported inside the functions that use it.

Before any slow work, expansion checks that the sources can reach the target (`research/tokenizer/expand.py`):
it reads the candidates of a kind that only reads files (seconds; the expansion then reuses them), and asks a
kind whose candidates are slow to make (training a model) or that writes to its work folder for an upper bound on
its number of candidates instead, registered with `@bound("<kind>")`.

`train_sp` fits SentencePiece bases only and `train_bpe` (training text for continued BPE) byte-level bases only
(`BASE_KINDS`, checked up front by each path); `wordlist` and `pieces_jsonl` fit both.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from research.errors import GraftError
from research.registry import Registry

if TYPE_CHECKING:
    from research.config.tokenizer import SourceConfig, TokenizerConfig

log = logging.getLogger(__name__)

Source = Callable[["SourceConfig", str, "TokenizerConfig", Path], Iterable[str]]
"""(source config, its key for messages, the tokenizer config, a work folder) -> candidate pieces in order (for
`train_bpe`: its training text, from which research/tokenizer/continued_bpe.py learns merges)."""
SOURCES: Registry = Registry("tokenizer source kind")
"""kind -> source, in registration order."""
register = SOURCES.register
BOUNDS: Registry = Registry("candidate bound of tokenizer source kind")
"""kind -> the most candidates a source of that kind can give, for kinds too slow to enumerate up front."""
BASE_KINDS = {"train_sp": "sentencepiece", "train_bpe": "bytelevel"}
"""Source kinds that fit one kind of base only (research/tokenizer/bytelevel.py: `base_format`); the others fit both."""
TEXT_KINDS = ("train_bpe",)
"""Kinds whose items are training text lines rather than candidate pieces."""
MAX_SP_PIECE_CHARS = 16
"""train_sp's max_sentencepiece_length: no trained candidate is longer."""


bound = BOUNDS.register


def check_fits(kind: str, base_format: str, key: str, base_path: str) -> None:
    """A one-line GraftError when source `kind` cannot expand a base of `base_format`."""
    needs = BASE_KINDS.get(kind)
    if needs is not None and needs != base_format:
        other = {"sentencepiece": "train_sp", "bytelevel": "train_bpe"}[base_format]
        raise GraftError(f"{key}.kind={kind!r}: needs a {needs} base, and tokenizer.base_path={base_path!r} is "
                         f"{base_format} (use kind {other})")


def progress(**kw) -> tqdm:
    """A progress bar on stderr, shown also when stderr is not a terminal (a log file), at most once a second."""
    return tqdm(mininterval=1.0, disable=False, **kw)


def _read_bar(path: Path, key: str) -> tqdm:
    return progress(total=path.stat().st_size, desc=f"{key}: read {path.name}", unit="B", unit_scale=True,
                    leave=False)


def _readable(path: str, key: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise GraftError(f"{key}: {str(p)!r} is not a readable file")
    try:
        with p.open("rb") as f:
            f.read(1)
    except OSError as e:
        raise GraftError(f"{key}: cannot read {str(p)!r} ({e.strerror})") from None
    return p


def _jsonl(path: Path, key: str, bar: tqdm | None = None) -> Iterator[tuple[int, dict]]:
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if bar is not None:
                bar.update(len(raw))
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise GraftError(f"{key}: {path}:{lineno}: corrupt jsonl line ({e.__class__.__name__})") from None
            if not isinstance(obj, dict):
                raise GraftError(f"{key}: {path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def training_lines(src: SourceConfig, key: str) -> Iterator[str]:
    """Text lines for SentencePiece training: plain text files, or a field of jsonl files."""
    with progress(desc=f"{key}: training text", unit=" lines") as bar:
        for line in _training_lines(src, key):
            bar.update()
            yield line


def _training_lines(src: SourceConfig, key: str) -> Iterator[str]:
    for path in src.paths:
        p = _readable(path, key)
        if p.suffix == ".jsonl":
            for lineno, obj in _jsonl(p, key):
                text = obj.get(src.jsonl_field)
                if not isinstance(text, str):
                    raise GraftError(f"{key}: {p}:{lineno}: field {src.jsonl_field!r} missing or not a string")
                yield from (t for t in text.splitlines() if t.strip())
        else:
            with p.open("r", encoding="utf-8", errors="strict") as f:
                try:
                    for line in f:
                        if line.strip():
                            yield line.rstrip("\n")
                except UnicodeDecodeError:
                    raise GraftError(f"{key}: {p} is not valid UTF-8 text") from None


@register("train_sp")
def train_sp(src: SourceConfig, key: str, cfg: TokenizerConfig, workdir: Path) -> list[str]:
    """Train a SentencePiece BPE model on the domain text; return its pieces in merge-priority order.

    Trained with the base's conventions (identity normalisation, split_digits, no byte fallback) so its
    pieces fit the base model. Single characters come first: they are never the result of a merge, so
    their score does not matter to BPE, and putting them first keeps them when the budget runs out
    (a character missing from the vocabulary costs up to 4 byte pieces). The model is kept in `workdir`.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    lines = training_lines(src, key)
    first = next(lines, None)
    if first is None:
        raise GraftError(f"{key}: no text in {src.paths}")
    model = io.BytesIO()
    spm.set_random_generator_seed(cfg.seed)
    log.info("%s: training a SentencePiece BPE model (vocab_size %d) on %s", key, src.vocab_size, list(src.paths))

    failed: list[GraftError] = []

    def stream():
        # SentencePiece turns an exception raised by its iterator into a RuntimeError that keeps only a
        # traceback line: keep ours, to report the file, line and reason it names.
        try:
            yield first
            yield from lines
        except GraftError as e:
            failed.append(e)
            raise

    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=stream(), model_writer=model, model_type="bpe", vocab_size=src.vocab_size,
            character_coverage=src.character_coverage, normalization_rule_name="identity",
            split_digits=True, byte_fallback=False, max_sentencepiece_length=MAX_SP_PIECE_CHARS,
            max_sentence_length=1 << 16,
            input_sentence_size=src.max_sentences, shuffle_input_sentence=True, num_threads=cfg.num_threads,
            hard_vocab_limit=False, minloglevel=2,
        )
    except RuntimeError as e:
        if failed:
            raise failed[0] from None
        raise GraftError(f"{key}: SentencePiece training failed: {str(e).strip().splitlines()[-1]}") from None
    (workdir / "candidates.model").write_bytes(model.getvalue())
    proto = pb.ModelProto()
    proto.ParseFromString(model.getvalue())
    normal = [p for p in proto.pieces if p.type == pb.ModelProto.SentencePiece.NORMAL]
    chars = [p.piece for p in normal if len(p.piece) == 1]
    merged = [p.piece for p in sorted(normal, key=lambda p: -p.score) if len(p.piece) > 1]
    log.info("candidate model: %d pieces (%d characters, %d merged)", len(normal), len(chars), len(merged))
    return chars + merged


@bound("train_sp")
def train_sp_bound(src: SourceConfig) -> int:
    """A trained model has at most vocab_size pieces (hard_vocab_limit=False only ever gives fewer)."""
    return src.vocab_size


@register("wordlist")
def wordlist(src: SourceConfig, key: str, cfg: TokenizerConfig | None = None,
             workdir: Path | None = None) -> Iterator[str]:
    """`word freq [pos]` lines (jieba's dict.txt), most frequent first; ties keep file order."""
    rows: list[tuple[int, int, str]] = []
    for path in src.paths:
        p = _readable(path, key)
        with p.open("rb") as f, _read_bar(p, key) as bar:
            for lineno, raw in enumerate(f, 1):
                bar.update(len(raw))
                try:
                    parts = raw.decode("utf-8").split()
                except UnicodeDecodeError:
                    raise GraftError(f"{key}: {p}:{lineno}: not valid UTF-8") from None
                if not parts:
                    continue
                freq = 1
                if len(parts) >= 2:
                    try:
                        freq = int(parts[1])
                    except ValueError:
                        raise GraftError(f"{key}: {p}:{lineno}: frequency {parts[1]!r} is not an integer") from None
                if freq >= src.min_freq:
                    rows.append((-freq, len(rows), parts[0]))
    rows.sort()
    return (w for _, _, w in rows)


@register("pieces_jsonl")
def pieces_jsonl(src: SourceConfig, key: str, cfg: TokenizerConfig | None = None,
                 workdir: Path | None = None) -> Iterator[str]:
    """{"piece": ...} lines (the reference's format), in file order."""
    for path in src.paths:
        p = _readable(path, key)
        with _read_bar(p, key) as bar:
            for lineno, obj in _jsonl(p, key, bar):
                piece = obj.get("piece")
                if not isinstance(piece, str):
                    raise GraftError(f"{key}: {p}:{lineno}: field 'piece' missing or not a string")
                yield piece


@register("train_bpe")
def train_bpe(src: SourceConfig, key: str, cfg: TokenizerConfig | None = None,
              workdir: Path | None = None) -> Iterator[str]:
    """Training text for continued BPE over a byte-level base (plain text or jsonl, as for train_sp): its non-blank
    lines in file order, the first `max_sentences` of them when that is set. The merges are learned over the base's
    segmentation of these lines (research/tokenizer/continued_bpe.py)."""
    lines = training_lines(src, key)
    return itertools.islice(lines, src.max_sentences) if src.max_sentences else lines


@bound("train_bpe")
def train_bpe_bound(src: SourceConfig) -> int:
    """Each learned merge makes one new token, and at most vocab_size are learned."""
    return src.vocab_size


def source_key(cfg, i: int) -> str:
    """How errors and progress bars name source i: `tokenizer.sources[i] (kind)`."""
    return f"tokenizer.sources[{i}] ({cfg.sources[i].kind})"


def source_items(cfg, i: int, workdir: Path):
    """Source i's candidates, from its registered kind (`workdir`: for a kind that writes there)."""
    src = cfg.sources[i]
    return SOURCES[src.kind](src, source_key(cfg, i), cfg, workdir)
