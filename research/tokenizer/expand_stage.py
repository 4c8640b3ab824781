"""The expand_vocab stage (`python -m research.expand_vocab`): expand, export as an HF folder, measure.

The base's format picks the path (research/tokenizer/bytelevel.py: `base_format`): a byte-level BPE base (an HF
folder with tokenizer.json and no tokenizer.model, or a tiktoken file) goes to research/tokenizer/bytelevel_stage.py;
a SentencePiece BPE base is expanded here. For a SentencePiece base this stage writes to out_dir an HF tokenizer folder (tokenizer.model, tokenizer.json, configs), the candidate model
when one was trained, config.yaml and summary.json (sizes, counts per source, compression per language,
slow/fast/SentencePiece agreement).
"""

import logging
from pathlib import Path

from omegaconf import DictConfig
from sentencepiece import sentencepiece_model_pb2 as pb

from research.atomic import atomic_dir
from research.config.root import GraftConfig
from research.config.tokenizer import TokenizerConfig
from research.runinfo import write_run_files
from research.tokenizer.bytelevel import base_format
from research.tokenizer.compression import (
    compression_report,
    consistency_report,
    read_eval_lines,
    sp_from_bytes,
    unchanged_lines,
)
from research.tokenizer.expand import check_sources, expand
from research.tokenizer.hf_export import load_hf_tokenizers, save_hf_tokenizer
from research.tokenizer.spm_model import load_model

log = logging.getLogger("graft.expand_vocab")


def run(cfg: GraftConfig, raw: DictConfig) -> dict:
    """Expand `tokenizer.base_path` into `out_dir`; return the summary's report."""
    tcfg = cfg.tokenizer
    if base_format(tcfg.base_path) != "sentencepiece":
        from research.tokenizer.bytelevel_stage import run as run_bytelevel

        return run_bytelevel(cfg, raw)
    base = load_model(tcfg.base_path)
    # Read the eval texts up front: a missing file should fail before minutes of training.
    texts = {lang: read_eval_lines(path, tcfg.eval_max_chars, f"tokenizer.eval_texts.{lang}")
             for lang, path in tcfg.eval_texts.items()}
    # The target, the sources' files and whether the sources can reach the target at all: seconds, before any
    # output folder exists.
    reach = check_sources(base, tcfg)
    with atomic_dir(cfg.out_dir, cfg.overwrite) as tmp:
        proto, report = expand(base, tcfg, tmp, reach)
        save_hf_tokenizer(proto, tmp)
        measure(report, base, proto, tmp, texts, tcfg)
        write_run_files(tmp, raw, {"app": "expand_vocab", **report})
    for lang, r in report["compression"].items():
        log.info("%s: %.4f -> %.4f tokens/char (ratio %.3f)", lang, r["base_tokens_per_char"],
                 r["expanded_tokens_per_char"], r["ratio"])
    log.info("wrote %s (%d pieces, %d new); slow/fast differ from SentencePiece on %d/%d of %d lines",
             cfg.out_dir, report["final_size"], report["new_pieces"], report["consistency"]["slow_differs"],
             report["consistency"]["fast_differs"], report["consistency"]["lines"])
    return report


def measure(report: dict, base: pb.ModelProto, proto: pb.ModelProto, folder: Path, texts: dict[str, list[str]],
            tcfg: TokenizerConfig) -> None:
    """Add compression, unchanged lines and slow/fast/SentencePiece consistency of the HF folder to `report`."""
    base_sp, new_sp = sp_from_bytes(base.SerializeToString()), sp_from_bytes(proto.SerializeToString())
    report["compression"] = compression_report(base_sp, new_sp, texts)
    report["unchanged_lines"] = unchanged_lines(base_sp, new_sp, texts)
    slow, fast = load_hf_tokenizers(folder)
    sample = [line for lines in texts.values() for line in lines[: tcfg.consistency_lines]]
    report["consistency"] = consistency_report(new_sp, slow, fast, sample)
    if len(fast) != tcfg.final_size:
        raise AssertionError(f"fast tokenizer has {len(fast)} tokens, expected {tcfg.final_size}")
