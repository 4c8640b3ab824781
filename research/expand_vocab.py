"""python -m research.expand_vocab: expand a base SentencePiece tokenizer to an exact target size.

Writes to out_dir an HF tokenizer folder (tokenizer.model, tokenizer.json, configs), the candidate model
when one was trained, config.yaml and summary.json (sizes, counts per source, compression per language,
slow/fast/SentencePiece agreement): research/tokenizer/expand_stage.py.
"""

from research.cli import app
from research.tokenizer.expand_stage import run


@app("expand_vocab")
def main(cfg, raw):
    return run(cfg, raw)


if __name__ == "__main__":
    main()
