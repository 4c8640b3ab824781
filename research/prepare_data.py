"""python -m research.prepare_data [data=demo|zh_only] [buckets=default|one|five|twenty] [run_root=...]

Clean, deduplicate, score, tokenize, pack and bucket a corpus into `datasets` Arrow folders (docs/prepare_data.md).
"""

from pathlib import Path

from research.atomic import atomic_dir
from research.cli import app, log
from research.data.prepare import prepare
from research.runinfo import write_run_files


@app("prepare_data")
def main(cfg, raw):
    with atomic_dir(cfg.out_dir, cfg.overwrite) as tmp:
        summary = prepare(cfg, raw, Path(tmp), cfg.paths.tokenizer)
        write_run_files(tmp, raw, summary)
    log.info("prepare_data: %s packs, %s tokens, efficiency %.4f -> %s", summary["packs"], summary["tokens"],
             summary["packing_efficiency"], cfg.out_dir)
    return summary


if __name__ == "__main__":
    main()
