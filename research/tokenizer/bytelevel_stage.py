"""The expand_vocab stage on a byte-level BPE base (`tokenizer.base_path` a folder with tokenizer.json and no
tokenizer.model, or a tiktoken-format .json file): read and check the base, check the sources, expand by continued
BPE, write the HF folder, check the guarantees, write summary.json.

A tiktoken file is converted to an HF folder in a temporary folder first (seconds:
research/tokenizer/tiktoken_format.py). Everything that can fail on the input does so before the output folder
exists; a guarantee that fails after the expansion fails the run, and nothing is published.
"""

import logging
import tempfile
import time
from pathlib import Path

from omegaconf import DictConfig

from research.atomic import atomic_dir
from research.config.root import GraftConfig
from research.runinfo import write_run_files
from research.tokenizer.bytelevel import KEY, ByteLevelBase, base_format, load_bytelevel_base
from research.tokenizer.bytelevel_checks import check_all
from research.tokenizer.bytelevel_expand import check_sources, expand
from research.tokenizer.bytelevel_export import save_bytelevel

log = logging.getLogger("graft.expand_vocab")


def open_base(path: str, workdir: Path) -> ByteLevelBase:
    """The byte-level base at `path`; a tiktoken file is converted into `workdir` first."""
    if base_format(path) == "tiktoken":
        from research.tokenizer.tiktoken_format import convert_tiktoken

        converted = convert_tiktoken(path, workdir / "converted")
        log.info("converted %s from tiktoken format in %.1f s (%d tokens)", path, converted["seconds"],
                 converted["size"])
        return load_bytelevel_base(workdir / "converted", KEY, source=path)
    return load_bytelevel_base(path, KEY)


def run(cfg: GraftConfig, raw: DictConfig) -> dict:
    """Expand the byte-level base into `out_dir`; return the summary's report."""
    from research.tokenizer.compression import read_eval_lines

    tcfg = cfg.tokenizer
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as conv:
        base = open_base(tcfg.base_path, Path(conv))
        texts = {lang: read_eval_lines(path, tcfg.eval_max_chars, f"tokenizer.eval_texts.{lang}")
                 for lang, path in tcfg.eval_texts.items()}
        reach = check_sources(base, tcfg)
        with atomic_dir(cfg.out_dir, cfg.overwrite) as tmp:
            growth, report = expand(base, tcfg, reach, tmp)
            t1 = time.monotonic()
            save_bytelevel(base, growth, tmp)
            report.update(check_all(base, growth, tmp, texts, tcfg))
            report["seconds"] = {"expand": round(t1 - t0, 1), "write_and_check": round(time.monotonic() - t1, 1)}
            write_run_files(tmp, raw, {"app": "expand_vocab", **report})
    for lang, r in report["compression"].items():
        log.info("%s: %.4f -> %.4f tokens/char (ratio %.3f)", lang, r["base_tokens_per_char"],
                 r["expanded_tokens_per_char"], r["ratio"])
    g = report["guarantees"]
    log.info("wrote %s (%d tokens, %d new); every guarantee held: %d/%d lines round-trip, %d/%d new tokens "
             "reachable as text", cfg.out_dir, report["final_size"], report["new_pieces"], g["round_trip"]["exact"],
             g["round_trip"]["lines"], g["reachable"]["reachable"], g["reachable"]["whole_characters"])
    return report
