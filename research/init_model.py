"""python -m research.init_model: resize the base model to the expanded tokenizer and initialise new rows.

Reads the tokenizer folder at `paths.tokenizer` and the base model (`model.path`, or built from the `model`
group); writes an HF model folder (safetensors) with the tokenizer beside it, config.yaml and summary.json.
"""

import logging
import shutil
from pathlib import Path

from research.atomic import atomic_dir
from research.cli import app
from research.contracts import TOKENIZER_FILES
from research.errors import GraftError
from research.init.resize import resize_and_init
from research.init.splits import base_splits
from research.model.build import base_model
from research.model.weights import check_readable
from research.runinfo import write_run_files
from research.tokenizer.spm_model import load_model

log = logging.getLogger("graft.init_model")


@app("init_model")
def main(cfg, raw):
    tok_dir = Path(cfg.paths.tokenizer)
    expanded = load_model(tok_dir, "paths.tokenizer")
    for name in TOKENIZER_FILES:
        if not (tok_dir / name).is_file():
            raise GraftError(f"paths.tokenizer={str(tok_dir)!r}: missing {name} (run research.expand_vocab first)")
    check_readable(tok_dir, "paths.tokenizer", TOKENIZER_FILES)  # copied at the end: fail now, not after the work
    model = base_model(cfg.model)
    old_size = model.get_input_embeddings().weight.shape[0]
    if old_size > len(expanded.pieces):
        raise GraftError(f"model has {old_size} embedding rows but the tokenizer at {tok_dir} has only "
                         f"{len(expanded.pieces)} pieces")
    # The base tokenizer is the expanded one's first `old_size` pieces (expansion never changes them).
    base = type(expanded)()
    base.CopyFrom(expanded)
    del base.pieces[old_size:]
    base.trainer_spec.vocab_size = old_size
    new_pieces = [p.piece for p in expanded.pieces[old_size:]]
    splits = base_splits(base.SerializeToString(), new_pieces)
    stats = resize_and_init(model, len(expanded.pieces), splits, cfg.init)
    model.config.pad_token_id, model.config.bos_token_id, model.config.eos_token_id = 0, 1, 2
    stats["split_pieces_mean"] = sum(len(s.ids) for s in splits) / max(len(splits), 1)
    stats["clean_split_pieces_mean"] = sum(len(s.clean_ids) for s in splits) / max(len(splits), 1)
    stats["pieces_left_out_by_clean_split"] = sum(len(s.ids) - len(s.clean_ids) for s in splits)
    with atomic_dir(cfg.out_dir, cfg.overwrite) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        for name in TOKENIZER_FILES:
            shutil.copyfile(tok_dir / name, tmp / name)
        write_run_files(tmp, raw, {"app": "init_model", "base_model": cfg.model.path or f"built: {cfg.model.name}",
                                   "parameters": sum(p.numel() for p in model.parameters()), **stats})
    log.info("wrote %s: %d -> %d rows, init=%s", cfg.out_dir, stats["old_size"], stats["new_size"], cfg.init.strategy)
    return stats


if __name__ == "__main__":
    main()
