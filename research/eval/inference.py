"""Batched scoring with a causal LM: sequences sorted by length, left-padded, with explicit position ids, so a
padded batch scores exactly like one sequence at a time (padding never reaches a score)."""

from collections.abc import Iterator, Sequence

import torch
from tqdm import tqdm

SOFTMAX_ELEMENTS = 1 << 22
"""Logits per log-softmax call when scoring (16 MB of float32): a full batch at once is gigabytes at a large
vocabulary (8 x 256 positions x 131,072), and an allocation that large is fresh, page-faulted memory every time."""


def pad_id_of(tokenizer) -> int:
    """The tokenizer's pad token, else unk, else eos: only ever placed on masked positions."""
    for tid in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return tid
    return 0


def batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length (longest first, ties by index: deterministic)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def target_logprob_sum(logits: torch.Tensor, target: torch.Tensor) -> float:
    """sum_t log_softmax(logits[t])[target[t]] for logits (positions, vocab), a few positions at a time."""
    step = max(1, SOFTMAX_ELEMENTS // logits.shape[-1])
    total = torch.zeros((), dtype=torch.float64, device=logits.device)
    for a in range(0, len(target), step):
        logp = torch.log_softmax(logits[a:a + step].float(), dim=-1)
        total += logp.gather(-1, target[a:a + step, None]).sum(dtype=torch.float64)
    return float(total)


def left_pad(seqs: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s):] = 1
    # Positions count real tokens only, so a left-padded row sees the same rotary phases as when alone.
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), pos.to(device)


class Scorer:
    def __init__(self, model, tokenizer, batch_size: int, progress: bool = True):
        self.model, self.tokenizer, self.batch_size, self.progress = model, tokenizer, batch_size, progress
        self.device = next(model.parameters()).device
        self.pad_id = pad_id_of(tokenizer)

    def _bar(self, total: int, desc: str):
        return tqdm(total=total, desc=desc, unit="seq", disable=not self.progress, leave=False)

    @torch.inference_mode()
    def next_token_logprobs(self, seqs: list[list[int]], desc: str = "first-token") -> list[torch.Tensor]:
        """log-softmax (float32) of the next-token distribution after each sequence, on the CPU."""
        out: list[torch.Tensor] = [None] * len(seqs)  # type: ignore[list-item]
        with self._bar(len(seqs), desc) as bar:
            for idx in batches([len(s) for s in seqs], self.batch_size):
                ids, mask, pos = left_pad([seqs[i] for i in idx], self.pad_id, self.device)
                logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1).logits
                logp = torch.log_softmax(logits[:, -1].float(), dim=-1).cpu()
                for row, i in enumerate(idx):
                    out[i] = logp[row]
                bar.update(len(idx))
        return out

    @torch.inference_mode()
    def continuation_logprobs(self, pairs: list[tuple[list[int], list[int]]], desc: str = "loglik") -> list[float]:
        """Sum of log p(continuation tokens | context) for each (context ids, continuation ids)."""
        seqs = [ctx + cont for ctx, cont in pairs]
        out = [0.0] * len(pairs)
        with self._bar(len(pairs), desc) as bar:
            for idx in batches([len(s) for s in seqs], self.batch_size):
                ids, mask, pos = left_pad([seqs[i] for i in idx], self.pad_id, self.device)
                # Left padding puts every continuation at the end: only the last (longest + 1) positions are needed.
                keep = max(len(pairs[i][1]) for i in idx) + 1
                logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep).logits
                for row, i in enumerate(idx):
                    cont = pairs[i][1]
                    n = len(cont)
                    # Logits at position t predict token t+1; the last logit predicts nothing here.
                    target = torch.tensor(cont, dtype=torch.long, device=logits.device)
                    out[i] = target_logprob_sum(logits[row, keep - 1 - n: keep - 1], target)
                bar.update(len(idx))
        return out

    @torch.inference_mode()
    def generate(self, seqs: list[list[int]], max_new_tokens: int, desc: str = "generate") -> list[list[int]]:
        """Greedy continuations (new token ids only), stopping at EOS."""
        out: list[list[int]] = [None] * len(seqs)  # type: ignore[list-item]
        eos = self.tokenizer.eos_token_id
        with self._bar(len(seqs), desc) as bar:
            for idx in batches([len(s) for s in seqs], self.batch_size):
                ids, mask, _ = left_pad([seqs[i] for i in idx], self.pad_id, self.device)
                gen = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                          do_sample=False, num_beams=1, pad_token_id=self.pad_id, eos_token_id=eos,
                                          temperature=None, top_p=None, top_k=None)
                for row, i in enumerate(idx):
                    new = gen[row, ids.shape[1]:].tolist()
                    if eos is not None and eos in new:
                        new = new[: new.index(eos)]
                    out[i] = new
                bar.update(len(idx))
        return out

    @torch.inference_mode()
    def window_nll(self, windows: list[list[int]], desc: str = "held-out") -> list[float]:
        """Sum of -log p(token t | tokens < t) over t >= 1 of each window."""
        pairs = [(w[:1], w[1:]) for w in windows]
        return [-x for x in self.continuation_logprobs(pairs, desc=desc)]
