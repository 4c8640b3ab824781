"""python -m research.prepare_data [data=demo|zh_only] [buckets=default|one|five|twenty] [run_root=...]

Clean, deduplicate, score, tokenize, pack and bucket a corpus into `datasets` Arrow folders (docs/prepare_data.md):
research/data/prepare.py.
"""

from research.cli import app
from research.data.prepare import run


@app("prepare_data")
def main(cfg, raw):
    return run(cfg, raw)


if __name__ == "__main__":
    main()
