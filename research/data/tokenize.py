"""Tokenize documents with the expanded tokenizer across worker processes, in a fixed order.

Each document becomes BOS + source + target + EOS. Its labels are -100 on BOS and the source (never trained on)
and the token ids on target and EOS; a document is stored as its ids plus the count of leading masked tokens.
Batches go to a process pool through `imap`, which returns them in submission order, so the output does not
depend on the worker count.
"""

import os
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from research.config.data import TokenizeConfig
from research.data.records import Record
from research.errors import GraftError


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


_worker: dict = {}


def _init_worker(path: str, special: SpecialIds, in_pool: bool = True) -> None:
    if in_pool:  # workers already run in parallel; the Rust thread pool would oversubscribe the cores
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from transformers import AutoTokenizer

    _worker["tok"] = AutoTokenizer.from_pretrained(path, use_fast=True)
    _worker["special"] = special


def _encode_batch(batch: list[tuple[str, str]]) -> list[tuple[np.ndarray, int]]:
    tok, sp = _worker["tok"], _worker["special"]
    src_idx = [i for i, (s, _) in enumerate(batch) if s]
    src = tok([batch[i][0] for i in src_idx], add_special_tokens=False)["input_ids"] if src_idx else []
    tgt = tok([t for _, t in batch], add_special_tokens=False)["input_ids"]
    src_of = dict(zip(src_idx, src, strict=False))
    head = [sp.bos] if sp.bos is not None else []
    tail = [sp.eos] if sp.eos is not None else []
    out = []
    for i, t in enumerate(tgt):
        s = src_of.get(i, [])
        out.append((np.array(head + s + t + tail, dtype=np.int32), len(head) + len(s)))
    return out


def tokenize(records: list[Record], tokenizer_path: str, special: SpecialIds, cfg: TokenizeConfig,
             num_workers: int, progress: bool = True) -> tuple[list[Doc], dict]:
    bs = cfg.batch_size
    batches = [[(r.source, r.target) for r in records[i:i + bs]] for i in range(0, len(records), bs)]
    bar = tqdm(total=len(records), desc="tokenize", unit="doc", disable=not progress, mininterval=1.0)
    results: list[tuple[np.ndarray, int]] = []
    if num_workers == 1:
        _init_worker(tokenizer_path, special, in_pool=False)
        for b in batches:
            results.extend(_encode_batch(b))
            bar.update(len(b))
    else:
        with get_context("fork").Pool(num_workers, _init_worker, (tokenizer_path, special)) as pool:
            for b, out in zip(batches, pool.imap(_encode_batch, batches), strict=False):
                results.extend(out)
                bar.update(len(b))
    bar.close()
    docs = [Doc(ids, n, r.category) for (ids, n), r in zip(results, records, strict=False)]
    tokens = sum(len(d.ids) for d in docs)
    per_cat: dict = {}
    for d in docs:
        per_cat[d.category] = per_cat.get(d.category, 0) + len(d.ids)
    stats = {"docs": len(docs), "tokens": tokens, "label_tokens": tokens - sum(d.n_masked for d in docs),
             "tokens_per_category": dict(sorted(per_cat.items()))}
    return docs, stats
