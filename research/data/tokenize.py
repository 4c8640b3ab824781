"""Tokenize documents with the expanded tokenizer, in a fixed order, with SentencePiece's C++ encoder when it can.

Each document becomes BOS + source + target + EOS. Its labels are -100 on BOS and the source (never trained on)
and the token ids on target and EOS; a document is stored as its ids plus the count of leading masked tokens.

The ids are defined by the folder's HF fast tokenizer (what every later stage loads with `AutoTokenizer`), with
this convention: source and target are encoded separately, each as a whole text without special tokens, so each
non-empty segment starts with its own dummy prefix "▁" (SentencePiece's rule: target's ids do not depend on
source); text that spells a special token ("</s>") is encoded as plain text (`split_special_tokens`), so a corpus
cannot inject control tokens.

A byte-level BPE folder (tokenizer.json and no tokenizer.model: Tekken, Llama-3, Qwen2 and their expansions) has no
dummy prefix: each segment's ids are its bytes' BPE. Its BOS / EOS / pad ids are the folder's own (Tekken: `<s>` 1,
`</s>` 2, `<pad>` 11); a folder without a pad token, or without BOS while `add_bos` is on, is a one-line error.

Backends (`data.tokenize.backend`):
- `sentencepiece`: the folder's `tokenizer.model` through `SentencePieceProcessor.encode(list, num_threads)` (C++,
  no Python work per token), several times faster than the fast tokenizer. SentencePiece and LLaMA's fast
  tokenizer disagree on text that starts with whitespace (SentencePiece adds the dummy prefix even there), so such
  segments go to the HF tokenizer. Before use, both are compared on an evenly spaced sample of the corpus's own
  segments plus fixed probes; any difference stops this backend (auto falls back to HF and says why).
- `hf`: (the only one for a byte-level folder, which `auto` picks there) the fast tokenizer on `num_workers` processes through an ordered `imap` (output independent of the
  worker count).
"""

import gc
import itertools
import os
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from research.config.data import TokenizeConfig
from research.data.document import Record
from research.errors import GraftError

SP_MODEL = "tokenizer.model"
PROBE_RECORDS = 256
# Fixed probes beside the corpus sample: special-token spellings, digits, byte fallback, CJK, punctuation.
PROBES = ("hello <s> world </s> <unk>", "中文 1.5 ≠ 3,14159", "tab\there\nnew line", "emoji 🙂 and 𠀀",
          "Ｆｕｌｌ－ｗｉｄｔｈ，标点。", "trailing space ")


@dataclass(slots=True)
class Doc:
    ids: np.ndarray
    """int32 token ids."""
    n_masked: int
    """Leading tokens (BOS + source) whose label is -100."""
    category: str


@dataclass(frozen=True)
class SpecialIds:
    bos: int | None
    eos: int | None
    pad: int


def load_tokenizer(path: str):
    """AutoTokenizer (fast) from an HF folder, or a one-line GraftError."""
    p = Path(path)
    if not p.is_dir():
        raise GraftError(f"paths.tokenizer={path!r}: no tokenizer folder (run `python -m research.expand_vocab` first)")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(p), use_fast=True)
    except Exception as e:  # noqa: BLE001 - any load failure is the user's folder, reported as one line
        raise GraftError(f"paths.tokenizer={path!r}: cannot load tokenizer: {str(e).splitlines()[0]}") from None


def special_ids(tok, cfg: TokenizeConfig, path: str) -> SpecialIds:
    if tok.pad_token_id is None:
        raise GraftError(f"paths.tokenizer={path!r}: tokenizer has no pad token; packing needs a real pad id "
                         "(never EOS): set pad_token, e.g. '<unk>' as the expanded tokenizers do")
    if tok.eos_token_id is not None and tok.pad_token_id == tok.eos_token_id:
        raise GraftError(f"paths.tokenizer={path!r}: pad token {tok.pad_token!r} is the EOS token; padding with EOS "
                         "masks real EOS tokens in packed sequences")
    if cfg.add_bos and tok.bos_token_id is None:
        raise GraftError(f"paths.tokenizer={path!r}: tokenizer has no BOS token (set data.tokenize.add_bos=false)")
    if cfg.add_eos and tok.eos_token_id is None:
        raise GraftError(f"paths.tokenizer={path!r}: tokenizer has no EOS token (set data.tokenize.add_eos=false)")
    return SpecialIds(tok.bos_token_id if cfg.add_bos else None, tok.eos_token_id if cfg.add_eos else None,
                      tok.pad_token_id)


def hf_encode(tok, texts: list[str]) -> list[list[int]]:
    """The reference ids of each text under the convention above."""
    if not texts:
        return []
    return tok(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]


class SentencePieceEncoder:
    """SentencePiece's C++ batch encoder, with the HF tokenizer for segments that start with whitespace."""

    def __init__(self, model_file: Path, hf_tok, num_threads: int):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.tok = hf_tok
        self.num_threads = num_threads

    def __call__(self, texts: list[str]) -> list[list[int]]:
        out = self.sp.encode(texts, num_threads=self.num_threads)
        odd = [i for i, t in enumerate(texts) if t[:1].isspace()]
        for i, ids in zip(odd, hf_encode(self.tok, [texts[i] for i in odd]), strict=True):
            out[i] = ids
        return out


def sentencepiece_mismatch(enc: SentencePieceEncoder, tok, records: list[Record]) -> str | None:
    """Why the SentencePiece path cannot stand in for the HF tokenizer on this corpus, or None if it can."""
    sp_size = enc.sp.get_piece_size()
    extra = [t for i, t in tok.added_tokens_decoder.items() if i >= sp_size and not t.special]
    if extra:
        return f"the HF tokenizer has {len(extra)} added non-special tokens outside {SP_MODEL} (e.g. {extra[0]!r})"
    backend = getattr(tok, "backend_tokenizer", None)
    base = backend.get_vocab_size(with_added_tokens=False) if backend is not None else len(tok)
    if base != sp_size:
        return f"the HF vocabulary ({base}) differs from {SP_MODEL}'s ({sp_size})"
    step = max(1, len(records) // PROBE_RECORDS)
    sample = records[::step][:PROBE_RECORDS]
    texts = list(PROBES) + [t for r in sample for t in (r.source, r.target) if t]
    names = [f"probe {p!r}" for p in PROBES] + [f"{r.uid} {f}" for r in sample for f, t in
                                                (("source", r.source), ("target", r.target)) if t]
    for name, a, b in zip(names, enc(texts), hf_encode(tok, texts), strict=True):
        if list(a) != list(b):
            return f"{SP_MODEL} and the HF tokenizer encode {name} differently"
    return None


_worker: dict = {}


def _init_worker(path: str, in_pool: bool = True) -> None:
    if in_pool:  # workers already run in parallel; the Rust thread pool would oversubscribe the cores
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, use_fast=True)
    _worker["encode"] = lambda texts: hf_encode(tok, texts)


def _encode_pairs(batch: list[tuple[str, str]]) -> tuple[list[list[int]], list[list[int]]]:
    """(source ids, target ids) of each (source, target); empty sources are not encoded."""
    encode = _worker["encode"]
    src_idx = [i for i, (s, _) in enumerate(batch) if s]
    src: list[list[int]] = [[] for _ in batch]
    for i, ids in zip(src_idx, encode([batch[i][0] for i in src_idx]) if src_idx else [], strict=True):
        src[i] = ids
    return src, list(encode([t for _, t in batch]))


def assemble(src: list[list[int]], tgt: list[list[int]], special: SpecialIds) -> tuple[list[np.ndarray], np.ndarray]:
    """Each document's int32 ids (views into one array) and its masked-prefix length, with no per-token Python."""
    head = [special.bos] if special.bos is not None else []
    tail = [special.eos] if special.eos is not None else []
    n_src = np.fromiter(map(len, src), dtype=np.int64, count=len(src))
    n_tgt = np.fromiter(map(len, tgt), dtype=np.int64, count=len(tgt))
    lens = len(head) + n_src + n_tgt + len(tail)
    parts = itertools.chain.from_iterable((head, s, t, tail) for s, t in zip(src, tgt, strict=True))
    flat = np.fromiter(itertools.chain.from_iterable(parts), dtype=np.int32, count=int(lens.sum()))
    ends = np.cumsum(lens)
    return [flat[e - n:e] for e, n in zip(ends.tolist(), lens.tolist(), strict=True)], len(head) + n_src


def choose_backend(tok, tokenizer_path: str, records: list[Record], cfg: TokenizeConfig,
                   num_threads: int) -> tuple[str, str, SentencePieceEncoder | None]:
    """(backend, reason, encoder); the sentencepiece backend only if it matches HF on this corpus."""
    if cfg.backend == "hf":
        return "hf", "data.tokenize.backend=hf", None
    model = Path(tokenizer_path) / SP_MODEL
    if not model.is_file():
        why = f"no {SP_MODEL} in the tokenizer folder"
    else:
        enc = SentencePieceEncoder(model, tok, num_threads)
        why = sentencepiece_mismatch(enc, tok, records)
        if why is None:
            return "sentencepiece", f"{SP_MODEL} matches the HF tokenizer on the corpus sample and probes", enc
    if cfg.backend == "sentencepiece":
        raise GraftError(f"data.tokenize.backend=sentencepiece: {why} (use backend=auto or hf)")
    return "hf", why, None


@contextmanager
def no_gc():
    """Pause the cyclic GC: millions of small int lists trigger full collections that find nothing to free."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def tokenize(records: list[Record], tokenizer_path: str, special: SpecialIds, cfg: TokenizeConfig,
             num_workers: int, progress: bool = True, tok=None) -> tuple[list[Doc], dict]:
    tok = tok if tok is not None else load_tokenizer(tokenizer_path)
    backend, why, enc = choose_backend(tok, tokenizer_path, records, cfg, num_workers)
    bs = cfg.batch_size
    batches = [[(r.source, r.target) for r in records[i:i + bs]] for i in range(0, len(records), bs)]
    bar = tqdm(total=len(records), desc=f"tokenize ({backend})", unit="doc", disable=not progress, mininterval=1.0)
    src: list[list[int]] = []
    tgt: list[list[int]] = []
    with no_gc():
        _encode_all(batches, enc, tokenizer_path, num_workers, bar, src, tgt, tok)
        ids, n_masked = assemble(src, tgt, special)
    bar.close()
    del src, tgt
    docs = [Doc(x, n, r.category) for x, n, r in zip(ids, n_masked.tolist(), records, strict=True)]
    lens = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    per_cat: dict = {}
    for d, n in zip(docs, lens.tolist(), strict=True):
        per_cat[d.category] = per_cat.get(d.category, 0) + n
    tokens = int(lens.sum())
    stats = {"backend": backend, "backend_reason": why, "docs": len(docs), "tokens": tokens,
             "label_tokens": tokens - int(n_masked.sum()), "tokens_per_category": dict(sorted(per_cat.items()))}
    return docs, stats


def _encode_all(batches, enc, tokenizer_path, num_workers, bar, src, tgt, tok) -> None:
    if enc is not None or num_workers == 1:
        if enc is not None:
            _worker["encode"] = enc
        else:  # the tokenizer already loaded (a large tokenizer.json takes seconds to load)
            _worker["encode"] = lambda texts: hf_encode(tok, texts)
        for b in batches:
            s, t = _encode_pairs(b)
            src += s
            tgt += t
            bar.update(len(b))
    else:
        with get_context("fork").Pool(num_workers, _init_worker, (tokenizer_path,)) as pool:
            for b, (s, t) in zip(batches, pool.imap(_encode_pairs, batches), strict=True):
                src += s
                tgt += t
                bar.update(len(b))
    _worker.clear()
