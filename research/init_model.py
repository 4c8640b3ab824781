"""python -m research.init_model: resize the base model to the expanded tokenizer and initialise new rows.

Reads the tokenizer folder at `paths.tokenizer` and the base model (`model.path`, or built from the `model`
group). A SentencePiece folder (tokenizer.model) splits each new piece with the base model; a byte-level BPE folder
(tokenizer.json, no tokenizer.model) decomposes each new token through its merges (research/init/splits.py), and the
saved config's pad / bos / eos ids are the tokenizer's. Writes an HF model folder (safetensors) with the tokenizer
beside it, config.yaml and summary.json, with the step-0 diagnostics (research/init/diagnostics.py) in summary.json
and W&B. Strategies that read text (init.domain_text, init.base_text) get it encoded by the expanded tokenizer.
"""

import json
import logging
import shutil
from pathlib import Path

from research import tracking
from research.atomic import atomic_dir
from research.cli import app
from research.contracts import TOKENIZER_FILES
from research.errors import GraftError
from research.init.corpus import load_corpus
from research.init.diagnostics import diagnose, flat
from research.init.resize import resize_and_init
from research.init.splits import base_splits, bytelevel_splits
from research.init.strategies import STRATEGIES
from research.model.build import base_model
from research.model.weights import check_readable
from research.runinfo import write_run_files
from research.tokenizer.spm_model import load_model

log = logging.getLogger("graft.init_model")


def tokenizer_files(tok_dir: Path) -> tuple[str, list[str]]:
    """(the folder's kind: sentencepiece | bytelevel, the tokenizer files that travel with the model). A byte-level
    folder (tokenizer.json, no tokenizer.model) has no tokenizer.model; vocab.json / merges.txt go with it when there."""
    if not (tok_dir / "tokenizer.model").is_file() and (tok_dir / "tokenizer.json").is_file():
        names = [n for n in TOKENIZER_FILES if n != "tokenizer.model"]
        return "bytelevel", names + [n for n in ("vocab.json", "merges.txt") if (tok_dir / n).is_file()]
    return "sentencepiece", list(TOKENIZER_FILES)


def sentencepiece_splits(tok_dir: Path, old_size: int):
    """(new size, splits) of a SentencePiece expansion: the base is the expanded model's first `old_size` pieces
    (expansion never changes them)."""
    expanded = load_model(tok_dir, "paths.tokenizer")
    if old_size > len(expanded.pieces):
        raise GraftError(f"model has {old_size} embedding rows but the tokenizer at {tok_dir} has only "
                         f"{len(expanded.pieces)} pieces")
    base = type(expanded)()
    base.CopyFrom(expanded)
    del base.pieces[old_size:]
    base.trainer_spec.vocab_size = old_size
    new_pieces = [p.piece for p in expanded.pieces[old_size:]]
    return len(expanded.pieces), base_splits(base.SerializeToString(), new_pieces)


def bytelevel_new_splits(tok_dir: Path, rows: int):
    """(new size, base size, splits) of a byte-level expansion: ids from the base size up are the new tokens.

    The base size is expand_vocab's `base_size` (summary.json), else the model's `rows`. A model may have more rows
    than its base tokenizer has ids (Qwen2: 151,936 rows for 151,665 ids); the new tokens then take the padding rows
    first (research/init/resize.py)."""
    from tokenizers import Tokenizer

    size = Tokenizer.from_file(str(tok_dir / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
    summary = tok_dir / "summary.json"  # expand_vocab's: the size of the base it expanded
    base_size = json.loads(summary.read_text(encoding="utf-8")).get("base_size") if summary.is_file() else None
    old_size = rows if base_size is None else base_size
    if base_size is not None and base_size > rows:
        raise GraftError(f"model has {rows} embedding rows but the tokenizer at {tok_dir} was expanded from a "
                         f"base of {base_size} tokens (its summary.json); the model must have a row for each")
    if old_size > size:
        raise GraftError(f"model has {rows} embedding rows but the tokenizer at {tok_dir} has only {size} tokens")
    data = json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8"))
    try:
        return size, old_size, bytelevel_splits(data, old_size)
    except ValueError as e:
        raise GraftError(f"paths.tokenizer={str(tok_dir)!r}: {e} (the model's {old_size} rows must be the base "
                         "vocabulary the tokenizer was expanded from)") from None


def special_token_ids(tok_dir: Path) -> tuple[int | None, int | None, int | None]:
    """(pad, bos, eos) ids of a byte-level folder, as AutoTokenizer reads them (None where it has none)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    return tok.pad_token_id, tok.bos_token_id, tok.eos_token_id


def base_tokenizer(cfg, kind: str, tok_dir: Path, old_size: int):
    """The base tokenizer as an HF tokenizer, for the base model's bits per byte. SentencePiece: the expanded model's
    first `old_size` pieces (expansion never changes them), exported like expand_vocab's folder. Byte-level: the
    base model folder's own (model.path), else tokenizer.base_path's folder; None when neither holds one."""
    import tempfile

    from transformers import AutoTokenizer

    if kind == "sentencepiece":
        from research.tokenizer.hf_export import save_hf_tokenizer

        base = load_model(tok_dir, "paths.tokenizer")
        del base.pieces[old_size:]
        base.trainer_spec.vocab_size = old_size
        with tempfile.TemporaryDirectory(prefix="graft-base-tok-") as d:
            save_hf_tokenizer(base, Path(d))
            return AutoTokenizer.from_pretrained(d)
    for where in (cfg.model.path, cfg.tokenizer.base_path):
        if not where:
            continue
        folder = Path(where) if Path(where).is_dir() else Path(where).parent
        if (folder / "tokenizer.json").is_file():
            try:
                return AutoTokenizer.from_pretrained(str(folder))
            except Exception as e:  # noqa: BLE001 - a folder we cannot read only costs the base numbers
                log.warning("base tokenizer at %s unreadable (%s): no base bits per byte", folder, e)
    log.warning("no base tokenizer (model.path, tokenizer.base_path): the diagnostics have no base bits per byte")
    return None


def check_corpus(cfg) -> None:
    """A strategy that reads text was given none, or a path that is not there: one line, before any work."""
    missing = cfg.init.missing_corpus()
    if missing:
        raise GraftError(f"{missing}=None: init.strategy={cfg.init.strategy} reads it; set {missing} to a text file "
                         "(.txt, one document per line, or .jsonl with a text field)")
    for key in getattr(STRATEGIES[cfg.init.strategy], "needs", ()):
        path = getattr(cfg.init, key)
        if not Path(path).expanduser().is_file():
            raise GraftError(f"init.{key}={path!r}: not found")


def initialise(cfg) -> tuple:
    """(the initialised model, the tokenizer files that travel with it, its figures, the rejected text lines):
    everything init_model does but write (benchmarks/init_strategies.py runs this for every strategy)."""
    check_corpus(cfg)
    tok_dir = Path(cfg.paths.tokenizer)
    kind, files = tokenizer_files(tok_dir)
    if kind == "sentencepiece":
        load_model(tok_dir, "paths.tokenizer")  # a one-line error for a folder that is no tokenizer at all
    for name in files:
        if not (tok_dir / name).is_file():
            raise GraftError(f"paths.tokenizer={str(tok_dir)!r}: missing {name} (run research.expand_vocab first)")
    check_readable(tok_dir, "paths.tokenizer", files)  # copied at the end: fail now, not after the work
    model = base_model(cfg.model)
    old_size = model.get_input_embeddings().weight.shape[0]
    if kind == "sentencepiece":
        new_size, splits = sentencepiece_splits(tok_dir, old_size)
        base_size = old_size
        special = (0, 1, 2)  # <unk> (the expanded tokenizers' pad), <s>, </s> of the LLaMA / Mistral vocabulary
    else:
        new_size, base_size, splits = bytelevel_new_splits(tok_dir, old_size)
        special = special_token_ids(tok_dir)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    corpus = load_corpus(cfg.init, tokenizer, base_size, splits, model)
    stats = resize_and_init(model, new_size, splits, cfg.init, base_size=base_size, corpus=corpus)
    model.config.pad_token_id, model.config.bos_token_id, model.config.eos_token_id = special
    stats["tokenizer_kind"] = kind
    stats["text_rejects"] = {k: corpus.rejects.count(k) for k in ("init.domain_text", "init.base_text")
                             if corpus.rejects.count(k)}
    stats["split_pieces_mean"] = sum(len(s.ids) for s in splits) / max(len(splits), 1)
    stats["clean_split_pieces_mean"] = sum(len(s.clean_ids) for s in splits) / max(len(splits), 1)
    stats["pieces_left_out_by_clean_split"] = sum(len(s.ids) - len(s.clean_ids) for s in splits)
    if cfg.init.diagnostics:
        texts = dict(cfg.init.heldout_texts or {})
        stats["diagnostics"] = diagnose(model, tokenizer, base_tokenizer(cfg, kind, tok_dir, base_size), corpus.to_base,
                                        cfg, texts, base_size, new_size)
        log.info("step 0: %s", ", ".join(f"{k}={v:.4g}" for k, v in flat(stats["diagnostics"]).items()
                                         if "heldout" in k or k == "init/kl_mean"))
    return model, files, stats, corpus.rejects


@app("init_model")
def main(cfg, raw):
    model, files, stats, rejects = initialise(cfg)
    tok_dir = Path(cfg.paths.tokenizer)
    with atomic_dir(cfg.out_dir, cfg.overwrite) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        for name in files:
            shutil.copyfile(tok_dir / name, tmp / name)
        rejects.write(tmp / "rejects.jsonl")
        write_run_files(tmp, raw, {"app": "init_model", "base_model": cfg.model.path or f"built: {cfg.model.name}",
                                   "parameters": sum(p.numel() for p in model.parameters()), **stats})
        if "diagnostics" in stats and tracking.init_run(cfg, raw, job_type="init_model", dir=tmp) is not None:
            figures = flat(stats["diagnostics"])
            tracking.log(figures)
            tracking.summary(figures)
            tracking.finish()
    log.info("wrote %s: %d -> %d rows, init=%s", cfg.out_dir, stats["old_size"], stats["new_size"], cfg.init.strategy)
    return stats


if __name__ == "__main__":
    main()
