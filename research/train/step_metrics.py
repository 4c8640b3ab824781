"""Throughput and utilisation figures, and where metrics go: metrics.jsonl beside the run, and W&B.

MFU = achieved model FLOP/s / (peak FLOP/s per device x devices), with model FLOPs per token
    6 * N + 12 * n_layers * hidden * seq_len
(PaLM, appendix B): 6N for the forward and backward matmuls over N non-embedding-lookup parameters (with tied
embeddings the one matrix is also the output projection, so N keeps it), plus the
attention scores and values (QK^T and AV, forward and backward) at full sequence length. Recomputation from
gradient checkpointing is not counted, so MFU stays comparable across that switch.
"""

import json
import logging
import os
import resource
import sys
from pathlib import Path

import torch

from research.errors import GraftError

log = logging.getLogger("graft")

# Dense bf16 peak FLOP/s per GPU (vendor data sheets, without sparsity).
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "A800": 312e12, "H800": 989e12, "L40S": 362e12,
              "A10": 125e12, "V100": 125e12, "4090": 165e12}


def peak_flops(configured: float) -> float | None:
    if configured > 0:
        return configured
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        for key, value in PEAK_FLOPS.items():
            if key in name:
                return value
    return None


def flops_per_token(model_config, num_params: int, seq_len: int) -> float:
    """PaLM's model FLOPs per token. `num_params` counts a tied matrix once (named_parameters does); the embedding
    lookup is left out of N only when untied: tied, that one matrix is also the lm_head, a real matmul."""
    tied = bool(getattr(model_config, "tie_word_embeddings", False))
    embedding = 0 if tied else model_config.vocab_size * model_config.hidden_size  # a lookup, not a matmul
    return 6 * (num_params - embedding) + 12 * model_config.num_hidden_layers * model_config.hidden_size * seq_len


def peak_memory_gb() -> float:
    """Peak GPU memory allocated by this process, or on CPU its peak resident set size."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**30 if sys.platform == "darwin" else rss / 2**20


def read_metrics(path: Path) -> tuple[list, bool]:
    """(line, record) of each record in a metrics.jsonl (none if there is no file), and whether its last line was
    torn (a write cut short by a kill: not a JSON object) and left out. Any other line that is not a JSON object
    is a GraftError naming it: only a last line can be torn."""
    if not path.exists():
        return [], False
    numbered = [(i, line) for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
                if line.strip()]
    rows = []
    for k, (i, line) in enumerate(numbered):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            if k == len(numbered) - 1:
                return rows, True
            raise GraftError(f"{path}: line {i} is not a JSON record (corrupt before its last line; move the file "
                             "away to resume without it)")
        rows.append((line, record))
    return rows, False


class MetricsLog:
    """Rank 0 appends one JSON object per logged step to metrics.jsonl and sends it to W&B."""

    def __init__(self, path: Path, resume_step: int, enabled: bool, cfg=None, raw=None):
        self.path, self.enabled, self.run = path, enabled, None
        if not enabled:
            return
        # After a resume, drop the records of steps that will be run again, so the file tells one history.
        if path.exists():
            rows, torn = read_metrics(path)
            if torn:
                log.warning("%s: dropped its torn last line (a write cut short)", path)
            keep = [line for line, record in rows if record.get("step", 0) <= resume_step]
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
            os.replace(tmp, path)  # a kill while rewriting leaves the old file, never half of it
        if cfg is not None:
            from research import tracking

            self.run = tracking.init_run(cfg, raw, job_type="train", dir=path.parent)

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.run is not None:
            from research import tracking

            tracking.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=record["step"])

    def finish(self, summary: dict | None) -> None:
        """End the W&B run, with the run's summary (None: an interrupted run has none)."""
        if self.run is not None:
            from research import tracking

            if summary is not None:
                tracking.summary({k: v for k, v in summary.items() if isinstance(v, (int, float))})
            tracking.finish()
