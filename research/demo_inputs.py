"""python -m research.demo_inputs: build the demo's inputs from installed packages (nothing is downloaded).

Writes to out_dir (default `${paths.inputs}`) the base tokenizer and model, held-out texts, jieba's word list,
a sample pieces.jsonl and the training corpus: research/demo/inputs_stage.py lists them.
"""

from research.cli import app
from research.demo.inputs_stage import run


@app("demo_inputs")
def main(cfg, raw):
    return run(cfg, raw)


if __name__ == "__main__":
    main()
