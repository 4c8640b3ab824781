"""python -m research.evaluate [eval=mmlu|mmlu_quick|cmmlu|ceval] eval.model_path=<HF folder>

Scores a causal LM on multiple-choice benchmarks (first-token, log-likelihood ranking, exact match, combined) and
held-out text (perplexity, bits per byte). Under `torchrun --nproc_per_node N` each process scores a shard."""

from research.cli import app
from research.eval.evaluation import run


@app("evaluate")
def main(cfg, raw):
    return run(cfg, raw)


if __name__ == "__main__":
    main()
