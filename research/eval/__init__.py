"""Evaluation the ColossalEval way: multiple-choice benchmarks, log-likelihood ranking, held-out perplexity."""
