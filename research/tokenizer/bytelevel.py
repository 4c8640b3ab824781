"""Which kind of base `tokenizer.base_path` names, and reading a byte-level BPE base with its checks.

`base_format(path)`:
- `sentencepiece`: a `.model` file, or a folder holding `tokenizer.model` (LLaMA-2 / Mistral format; the
  SentencePiece path, research/tokenizer/expand.py);
- `bytelevel`: a folder holding `tokenizer.json` and no `tokenizer.model` (Llama-3, Qwen2, GPT-2 style);
- `tiktoken`: a `.json` file in tiktoken format (mistral-common's Tekken), converted to a byte-level folder first
  (research/tokenizer/tiktoken_format.py).

A byte-level base must be a BPE model (not WordPiece or Unigram) over byte-level pre-tokenization: a `ByteLevel`
pre-tokenizer alone, or inside a `Sequence` (after a `Split` regex, as Llama-3, Qwen2 and Tekken have it). Anything
else is a one-line GraftError naming the file and the reason, before any work.

Added tokens whose ids lie past the model's vocabulary (Llama-3's and Qwen2's special tokens) are written into the
vocabulary at their own ids when new tokens are appended: `tokenizers` 0.21 gives an added token that is not a
model entry the next id after the model's vocabulary, so appending entries there would move them
(`model_vocab`).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from research.errors import GraftError

KEY = "tokenizer.base_path"


def base_format(path: str | Path, key: str = KEY) -> str:
    """sentencepiece | bytelevel | tiktoken (module docstring); a missing path is left to the SentencePiece
    reader, whose message names it."""
    p = Path(path)
    if p.is_dir():
        if (p / "tokenizer.model").is_file() or not (p / "tokenizer.json").is_file():
            return "sentencepiece"
        return "bytelevel"
    if p.is_file() and p.suffix == ".json":
        if p.name == "tokenizer.json":
            raise GraftError(f"{key}={str(p)!r}: name the folder that holds tokenizer.json, not the file")
        return "tiktoken"
    return "sentencepiece"


@dataclass
class ByteLevelBase:
    """A byte-level BPE base as read from its folder."""
    folder: Path
    data: dict
    """tokenizer.json as a JSON object (the expansion edits a copy of it)."""
    tokenizer: object
    """`tokenizers.Tokenizer` loaded from the same file."""
    size: int
    """Every id the base uses, added tokens included: new tokens start here."""
    token_bytes: list[bytes | None]
    """id -> the bytes the token stands for; None for added (special) tokens."""
    merges: int
    added: set[int] = field(default_factory=set)
    """Ids of added tokens."""
    source: str = ""
    """What base_path named: the folder, or the tiktoken file it was converted from."""

    @property
    def vocab(self) -> dict[str, int]:
        return self.data["model"]["vocab"]


def _pre_tokenizer_reason(pre: dict | None) -> str | None:
    """Why a pre-tokenizer is not byte-level, or None when it is."""
    if pre is None:
        return "it has no pre-tokenizer (a byte-level BPE needs ByteLevel pre-tokenization)"
    kind = pre.get("type")
    if kind == "ByteLevel":
        return None
    if kind == "Sequence":
        kinds = [p.get("type") for p in pre.get("pretokenizers", [])]
        if "ByteLevel" in kinds:
            return None
        return f"its pre-tokenizer is Sequence{kinds}, without ByteLevel"
    return f"its pre-tokenizer is {kind} (not byte-level)"


def check_tokenizer_json(data, where: str) -> None:
    """The one-line GraftError for a tokenizer.json that is not a byte-level BPE."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise GraftError(f"{where}: not an HF tokenizer.json (no model)")
    kind = data["model"].get("type")
    if kind != "BPE":
        raise GraftError(f"{where}: its model is {kind}; only BPE tokenizers can be expanded")
    reason = _pre_tokenizer_reason(data.get("pre_tokenizer"))
    if reason:
        raise GraftError(f"{where}: {reason}")
    if data["model"].get("byte_fallback") or data["model"].get("continuing_subword_prefix") \
            or data["model"].get("end_of_word_suffix"):
        raise GraftError(f"{where}: BPE with byte_fallback or subword prefixes/suffixes is not byte-level BPE")


def load_bytelevel_base(folder: str | Path, key: str = KEY, source: str | None = None) -> ByteLevelBase:
    """Read and check the byte-level base in `folder`."""
    from tokenizers import Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    path = Path(folder) / "tokenizer.json"
    where = f"{key}={str(source or path)!r}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GraftError(f"{where}: not a readable tokenizer.json ({e.__class__.__name__})") from None
    check_tokenizer_json(data, where)
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # noqa: BLE001 - the library's parse error, reported as one line
        raise GraftError(f"{where}: tokenizers cannot load it: {str(e).splitlines()[0]}") from None
    decode = {c: b for b, c in bytes_to_unicode().items()}
    vocab = data["model"]["vocab"]
    added = {t["id"] for t in data.get("added_tokens", [])}
    size = max([*vocab.values(), *added], default=-1) + 1
    token_bytes: list[bytes | None] = [None] * size
    for text, i in vocab.items():
        if i not in added:
            try:
                token_bytes[i] = bytes(decode[c] for c in text)
            except KeyError:
                raise GraftError(f"{where}: vocabulary entry {text!r} (id {i}) is not in the byte-level "
                                 "alphabet") from None
    missing = [i for i in range(size) if token_bytes[i] is None and i not in added]
    if missing:
        raise GraftError(f"{where}: ids are not contiguous (no token has id {missing[0]})")
    return ByteLevelBase(Path(folder), data, tok, size, token_bytes, len(data["model"].get("merges", [])),
                         added, str(source or folder))


def model_vocab(base: ByteLevelBase) -> dict[str, int]:
    """The model vocabulary with every added token that is not a model entry put in at its own id (module
    docstring); the base's own entries unchanged."""
    vocab = dict(base.vocab)
    for t in base.data.get("added_tokens", []):
        if t["content"] not in vocab:
            vocab[t["content"]] = t["id"]
        elif vocab[t["content"]] != t["id"]:
            raise GraftError(f"{KEY}={base.source!r}: added token {t['content']!r} has id {t['id']} but the "
                             f"vocabulary gives it {vocab[t['content']]}")
    return vocab
